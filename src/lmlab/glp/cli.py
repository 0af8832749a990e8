"""`lmlab glp ...`: train generative meta-models of activations (evaluation, sweep, steering: next)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def train_cmd(
    store: Path = typer.Option(..., help="Activation store (lmlab acts harvest)."),
    out: Path = typer.Option(..., help="Run directory."),
    preset: str = typer.Option("tiny", help="tiny | smollm2-d3 | smollm2-d6 | smollm2-d12."),
    set_: list[str] = typer.Option([], "--set", help="Override any field: --set lr=1e-3 --set net.n_layers=6."),
    resume: bool = typer.Option(False, help="Continue exactly from OUT/ckpt."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Train a GLP denoiser on a store (torchrun-aware: `torchrun --nproc_per_node 2 -m lmlab glp train ...`)."""
    import json

    from lmlab.config import apply_overrides, get_preset, print_dry_run
    from lmlab.glp import train as T

    cfg = apply_overrides(get_preset("glp", preset), [f"store={json.dumps(str(store))}", *set_])
    if dry_run:
        print_dry_run(cfg, f"lmlab glp train --preset {preset}")
        return
    summary = T.train_glp(cfg, out, resume=resume, progress=progress)
    if summary:
        print(json.dumps(summary))

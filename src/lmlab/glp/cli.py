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


@app.command("eval")
def eval_cmd(
    glp: Path = typer.Option(..., "--glp", help="GLP run directory (lmlab glp train)."),
    store: Path = typer.Option(..., help="The activation store it was trained on (held-out documents are used)."),
    n: int = typer.Option(4000, help="Samples and held-out real activations compared."),
    steps: str = typer.Option("1,4,20", help="Euler step counts to sample with."),
    json_: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
) -> None:
    """Held-out diffusion loss, FD and classifier two-sample accuracy vs the floor and a Gaussian baseline."""
    import json

    from lmlab.glp.evaluate import evaluate

    out = evaluate(glp, store, n=n, steps=tuple(int(s) for s in steps.split(",")))
    print(json.dumps(out) if json_ else json.dumps(out, indent=2))


@app.command("delta-lm")
def delta_lm_cmd(
    glp: Path = typer.Option(..., "--glp", help="GLP run directory."),
    store: Path = typer.Option(..., help="The activation store it was trained on (gives model, layer, stats)."),
    n_docs: int = typer.Option(200, help="Held-out documents (corpus val split)."),
    seq_len: int = typer.Option(128, help="Tokens per document."),
    sigma_start: float = typer.Option(0.5, help="Noise level the reconstructions start from."),
) -> None:
    """ΔLM: LM loss increase when layer-L residuals are replaced by GLP / Gaussian-prior / mean reconstructions."""
    import json

    from lmlab.glp.evaluate import delta_lm, load_glp

    print(json.dumps(delta_lm(load_glp(glp), store, n_docs=n_docs, seq_len=seq_len, sigma_start=sigma_start)))


@app.command("sweep")
def sweep_cmd(
    store: Path = typer.Option(..., help="Activation store."),
    out: Path = typer.Option(..., help="Sweep directory: d<k>/ runs, runs.csv, scaling_fit.json/png."),
    depths: str = typer.Option("1,2,3", help="Comma-separated denoiser depths."),
    preset: str = typer.Option("smollm2-d3", help="Base preset (depth is overridden)."),
    set_: list[str] = typer.Option([], "--set", help="Overrides for every run, e.g. --set max_steps=500."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train the depth family (resumable) and fit held-out loss vs compute, L(C) = E + A C^-alpha."""
    import json

    from lmlab.glp.sweep import sweep

    print(json.dumps(sweep(str(store), out, [int(d) for d in depths.split(",")], preset, list(set_), progress)))

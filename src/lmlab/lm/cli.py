"""`lmlab lm ...`: train, export to HF, sample."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def train_cmd(
    out: Path = typer.Option(..., help="Run directory."),
    preset: str = typer.Option("tiny", help="Preset name (see `lmlab lm presets`)."),
    data: str = typer.Option(None, help="Prepared dataset dir, or 'embedded' (overrides the preset)."),
    max_steps: int = typer.Option(None, help="Override max_steps."),
    set_: list[str] = typer.Option([], "--set", help="Override any field: --set lr=1e-3 --set model.n_layer=6."),
    resume: bool = typer.Option(False, help="Continue exactly from OUT/ckpt."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Train an LM from scratch (torchrun-aware: `torchrun --nproc_per_node 2 -m lmlab lm train ...`)."""
    import json

    from lmlab.config import apply_overrides, get_preset, print_dry_run
    from lmlab.lm import train as T

    cfg = get_preset("lm", preset)
    overrides = list(set_) + ([f"data={json.dumps(data)}"] if data else []) + (
        [f"max_steps={max_steps}"] if max_steps is not None else [])
    cfg = apply_overrides(cfg, overrides)
    if dry_run:
        print_dry_run(cfg, f"lmlab lm train --preset {preset}")
        return
    summary = T.train(cfg, out, resume=resume, progress=progress)
    if summary:
        print(json.dumps(summary, indent=2))


@app.command("presets")
def presets_cmd() -> None:
    """List training presets."""
    from lmlab.config import presets
    from lmlab.lm import train  # noqa: F401  (registers the presets)

    print("\n".join(presets("lm")))


@app.command("export-hf")
def export_cmd(run_dir: Path, out_dir: Path) -> None:
    """Export a finished run to a HF LlamaForCausalLM directory (AutoModelForCausalLM loads it)."""
    from lmlab.lm.hf import export_hf

    print(export_hf(run_dir, out_dir))


@app.command("generate")
def generate_cmd(model: str = typer.Argument(..., help="Model spec: smollm2, HF dir, lmlab run dir."),
                 prompt: str = typer.Option("The", help="Prompt text."),
                 max_new_tokens: int = typer.Option(40), temperature: float = typer.Option(0.0),
                 seed: int = typer.Option(0)) -> None:
    """Sample a continuation (temperature 0 = greedy) from any model spec."""
    from lmlab.lm.generate import complete

    print(complete(model, prompt, max_new_tokens=max_new_tokens, temperature=temperature, seed=seed))

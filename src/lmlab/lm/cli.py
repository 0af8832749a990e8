"""`lmlab lm ...`: train, export to HF, sample."""

from __future__ import annotations

from pathlib import Path

import typer

from lmlab.cli_options import check_number, option, parse_log

app = typer.Typer(no_args_is_help=True)
_T = "lmlab.lm.train:TrainConfig"  # option defaults and help live in the config (and in complete's signature)
_GEN = "lmlab.lm.generate:complete"


@app.command("train")
def train_cmd(
    out: Path = typer.Option(..., help="Run directory."),
    preset: str = typer.Option("tiny", help="Preset name; `lmlab lm presets` lists them."),
    data: str = option(_T, "data", shown="the preset's"),
    max_steps: int = option(_T, "max_steps", shown="the preset's"),
    set_: list[str] = typer.Option([], "--set", help="Override any field: --set lr=1e-3 --set model.n_layer=6 "
                                                     "(--data and --max-steps win over --set)."),
    log: list[str] = option(_T, "log", "--log", note="Repeatable or comma-separated.", shown="none"),
    resume: bool = typer.Option(False, help="Continue exactly from OUT/ckpt."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Train an LM from scratch (torchrun-aware: `torchrun --nproc_per_node 2 -m lmlab lm train ...`)."""
    import json

    from lmlab.config import apply_overrides, get_preset, print_dry_run, set_fields
    from lmlab.lm import train as T

    check_number(max_steps, "--max-steps", minimum=1)
    cfg = set_fields(apply_overrides(get_preset("lm", preset), list(set_)),
                     {"data": data, "max_steps": max_steps, "log": parse_log(log)})
    if dry_run:
        print_dry_run(cfg, f"lmlab lm train --preset {preset}")
        return
    summary = T.train(cfg, out, resume=resume, progress=progress)
    if summary:
        print(json.dumps(summary, indent=2))


@app.command("presets")
def presets_cmd() -> None:
    """List the training presets (for --preset), one name per line."""
    from lmlab.config import presets
    from lmlab.lm import train  # noqa: F401  (registers the presets)

    print("\n".join(presets("lm")))


@app.command("export-hf")
def export_cmd(run_dir: Path, out_dir: Path) -> None:
    """Export a finished run to a HF LlamaForCausalLM directory (AutoModelForCausalLM loads it)."""
    from lmlab.lm.hf import export_hf

    print(export_hf(run_dir, out_dir))


@app.command("generate")
def generate_cmd(model: str = typer.Argument(..., help="Model spec: smollm2 | local HF dir | lmlab run dir | hub id."),
                 prompt: str = typer.Option("The", help="Prompt text."),
                 max_new_tokens: int = option(_GEN, "max_new_tokens", help="Tokens to generate."),
                 temperature: float = option(_GEN, "temperature", help="Sampling temperature (0 = greedy)."),
                 seed: int = option(_GEN, "seed", help="Sampling seed.")) -> None:
    """Sample a continuation (temperature 0 = greedy) from any model spec."""
    from lmlab.config import given
    from lmlab.lm.generate import complete

    check_number(max_new_tokens, "--max-new-tokens", minimum=1), check_number(temperature, "--temperature", minimum=0)
    print(complete(model, prompt, **given(max_new_tokens=max_new_tokens, temperature=temperature, seed=seed)))

"""`lmlab scaling ...`: fit, predict, slowdown, sweep (thin shell over lmlab.scaling)."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)


def _csv_list(s: str, cast=str) -> list:
    return [cast(v.strip()) for v in s.split(",") if v.strip()]


@app.command("sweep")
def sweep_cmd(
    out: Path = typer.Option(..., help="Sweep directory: one run dir per point, runs.csv, sweep_summary.json."),
    sizes: str = typer.Option("16x1,32x1,32x2", help="Comma-separated WIDTHxLAYERS model shapes."),
    tokens_per_param: str = typer.Option("10", help="Comma-separated tokens per parameter (each size x each)."),
    data: str = typer.Option("embedded", help="Prepared dataset dir (lmlab data prepare) or 'embedded'."),
    set_: list[str] = typer.Option([], "--set", help="Override any SweepConfig field: --set lr_ref=3e-3."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and the run plan, then exit."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train a family of LMs (size-scaled LR and warmup), resumable; every eval is a runs.csv row."""
    import json

    from lmlab.config import apply_overrides, print_dry_run
    from lmlab.scaling.sweep import SweepConfig, describe_plan, sweep

    cfg = apply_overrides(SweepConfig(), [f"sizes={json.dumps(_csv_list(sizes))}",
                                          f"tokens_per_param={json.dumps(_csv_list(tokens_per_param, float))}",
                                          f"data={json.dumps(data)}", *set_])
    if dry_run:
        print_dry_run(cfg, "lmlab scaling sweep")
        for row in describe_plan(cfg, out):
            typer.echo(json.dumps(row), err=True)
        return
    print(json.dumps(sweep(cfg, out, progress=progress)))

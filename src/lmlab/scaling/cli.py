"""`lmlab scaling ...`: sweep, fit, predict, allocate, critical-batch, slowdown (thin shell over lmlab.scaling)."""

from __future__ import annotations

from pathlib import Path

import typer

from lmlab.cli_options import check_number, option, parse_list, parse_number

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
# option defaults and help live in these configs and function signatures (read without importing numpy)
_SW, _COLS = "lmlab.scaling.sweep:SweepConfig", "lmlab.scaling.table:Columns"
_FIT, _PRED = "lmlab.scaling.fit:fit", "lmlab.scaling.predict"


@app.command("sweep")
def sweep_cmd(
    out: Path = typer.Option(..., help="Sweep directory: one run dir per point, runs.csv, sweep_summary.json."),
    sizes: str = option(_SW, "sizes", note="Comma-separated."),
    tokens_per_param: str = option(_SW, "tokens_per_param", note="Comma-separated."),
    data: str = option(_SW, "data"),
    set_: list[str] = typer.Option([], "--set", help="Override any SweepConfig field: --set lr_ref=3e-3."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and the run plan, then exit."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Train a family of LMs (size-scaled LR and warmup), resumable; every eval is a runs.csv row."""
    import json

    from lmlab.config import apply_overrides, print_dry_run, set_fields
    from lmlab.scaling.sweep import SweepConfig, describe_plan, sweep

    cfg = set_fields(SweepConfig(), {"sizes": parse_list(sizes, "--sizes"), "data": data,
                                     "tokens_per_param": parse_list(tokens_per_param, "--tokens-per-param", float,
                                                                    minimum=0, min_open=True, example="5,20")})
    cfg = apply_overrides(cfg, list(set_))
    if dry_run:
        print_dry_run(cfg, "lmlab scaling sweep")
        for row in describe_plan(cfg, out):
            typer.echo(json.dumps(row), err=True)
        return
    print(json.dumps(sweep(cfg, out, progress=progress)))


_RUNS = typer.Option(..., "--runs", help="CSV of runs (default columns N, D, C, loss; e.g. a sweep's runs.csv).")
_NCOL = option(_COLS, "n", "--n-col")
_DCOL = option(_COLS, "d", "--d-col", note="Derived as C/(6N) when absent.")
_CCOL = option(_COLS, "c", "--c-col", note="Derived as 6ND when absent.")
_LCOL = option(_COLS, "loss", "--loss-col")
_GCOL = typer.Option("run", "--group-col", help="Run column: bootstrap resamples whole runs when present.")
_BOOT = typer.Option(200, help="Bootstrap resamples for the 95% intervals (0: none).")
_SEED = typer.Option(0, help="Bootstrap seed (results are deterministic given it).")
_JSON = typer.Option(False, "--json", help="Print exactly one JSON object on stdout.")
_PARTIAL = typer.Option(False, "--allow-partial-bootstrap",
                        help="Print intervals even when fewer than 80% of the bootstrap resamples could be fitted "
                             "(withheld by default: the resamples that fit are a biased subset).")


def _emit(obj: dict, json_: bool, out: Path | None) -> None:
    import json
    import sys

    from lmlab.io import write_json

    if out is not None:
        write_json(out, obj)
    for fit in (obj.get(k) for k in ("fit", "baseline_fit")) if "law" not in obj else [obj]:
        if isinstance(fit, dict) and fit.get("n_bootstrap_requested"):  # what became of the bootstrap, on stderr
            print(f"bootstrap: {fit['n_bootstrap_kept']} of {fit['n_bootstrap_requested']} resamples kept "
                  f"(over {fit['bootstrap_unit']})" + (f"; {fit['ci_note']}" if fit.get("ci_note") else ""),
                  file=sys.stderr)
    print(json.dumps(obj) if json_ else json.dumps(obj, indent=2))


def _columns(n_col, d_col, c_col, loss_col):
    """The CSV column names: the options given, Columns' defaults for the rest."""
    from lmlab.config import given
    from lmlab.scaling.table import Columns

    return Columns(**given(n=n_col, d=d_col, c=c_col, loss=loss_col))


def _load(runs: Path, need, n_col, d_col, c_col, loss_col, group_col, final_only=False, min_frac=0.0,
          drop_highest_loss=0):
    from lmlab.scaling.table import group_labels, load_columns, read_table, select_rows

    c = _columns(n_col, d_col, c_col, loss_col)
    rows = select_rows(read_table(runs), final_only, min_frac, group_col, c.d, drop_highest_loss, c.loss)
    return load_columns(runs, c, need, rows), group_labels(rows, group_col), rows


@app.command("fit")
def fit_cmd(
    runs: Path = _RUNS,
    law: str = typer.Option(..., help="kaplan-n | kaplan-d | kaplan-c | kaplan-nd | gpt4-c | chinchilla | passrate "
                                      "| broken-c."),
    method: str = option(_FIT, "method", help="huber (multi-start L-BFGS, Epoch) | varpro (VPNLS)."),
    starts: str = option(_FIT, "starts", help="'all' grid starts (Epoch) or the K best grid points."),
    bootstrap: int = _BOOT, seed: int = _SEED, allow_partial_bootstrap: bool = _PARTIAL,
    n_col: str = _NCOL, d_col: str = _DCOL, c_col: str = _CCOL, loss_col: str = _LCOL, group_col: str = _GCOL,
    final_only: bool = typer.Option(False, "--final-only", help="Use only each run's last row."),
    min_frac: float = typer.Option(0.0, help="Drop checkpoints with D below this fraction of their run's final D."),
    drop_highest_loss: int = typer.Option(0, help="Drop the K highest-loss rows first (Epoch drops 5)."),
    plot: Path = typer.Option(None, help="Write a PNG: fit + 95% band + residuals (iso-loss for chinchilla)."),
    out: Path = typer.Option(None, help="Also write the JSON here."),
    json_: bool = _JSON,
) -> None:
    """Fit a scaling law (Huber on log residuals, summed, δ=1e-3) with bootstrap intervals."""
    from lmlab.config import given
    from lmlab.scaling.fit import fit
    from lmlab.scaling.laws import get_law

    starts_ = parse_number(starts, "--starts", int, minimum=1, also=("all",), example="all")
    check_number(min_frac, "--min-frac", minimum=0, maximum=1)
    check_number(drop_highest_loss, "--drop-highest-loss", minimum=0)
    lw = get_law(law)
    cols, groups, _ = _load(runs, lw.inputs, n_col, d_col, c_col, loss_col, group_col, final_only, min_frac,
                            drop_highest_loss)
    res = fit(law, **{k: cols[k] for k in lw.inputs}, loss=cols["loss"], bootstrap=bootstrap, seed=seed,
              groups=groups, allow_partial_bootstrap=allow_partial_bootstrap, **given(method=method, starts=starts_))
    if plot is not None:
        _plot_fit(res, cols, plot)
    _emit(res.to_json(), json_, out)


def _plot_fit(res, cols: dict, png: Path) -> None:
    from lmlab.scaling import plots
    from lmlab.scaling.laws import get_law

    lw = get_law(res.law)
    if res.law == "chinchilla":
        plots.isoloss_plot(res, cols["N"], cols["D"], cols["loss"], png)
        plots.residual_plot(res, cols, png.with_name(png.stem + "_residuals.png"))
    elif len(lw.inputs) == 1:
        plots.fit_plot(res, cols[lw.inputs[0]], cols["loss"], png, xname=lw.inputs[0])
    else:
        plots.residual_plot(res, cols, png)


@app.command("predict")
def predict_cmd(
    runs: Path = _RUNS,
    law: str = option(f"{_PRED}:predict_extrapolation", "law",
                      help="Single-input law in C: gpt4-c | kaplan-c | broken-c | passrate."),
    fit_max_compute: float = typer.Option(..., help="Fit only runs whose final C <= this (GPT-4 style; without a "
                                                    "run column: rows with C <= this)."),
    target: str = typer.Option(None, help="Comma-separated target compute values C*."),
    target_run: list[str] = typer.Option([], help="Predict this run's final row (its C and actual loss)."),
    use_frontier: bool = typer.Option(False, "--frontier", help="Fit the compute-efficient frontier of the rows."),
    final_only: bool = typer.Option(False, "--final-only", help="Fit only each run's last row."),
    bootstrap: int = _BOOT, seed: int = _SEED, allow_partial_bootstrap: bool = _PARTIAL,
    n_col: str = _NCOL, d_col: str = _DCOL, c_col: str = _CCOL, loss_col: str = _LCOL, group_col: str = _GCOL,
    plot: Path = typer.Option(None, help="PNG: fit points, extrapolated fit with 95% band, actual targets."),
    out: Path = typer.Option(None, help="Also write the JSON here."),
    json_: bool = _JSON,
) -> None:
    """Fit on small runs only and predict the loss at larger compute, with an interval and the error when the
    target run exists."""
    import numpy as np

    from lmlab.config import given
    from lmlab.errors import DataError
    from lmlab.scaling.predict import predict_extrapolation

    targets = parse_list(target, "--target", float, minimum=0, min_open=True, example="1e21,1e22") or []
    check_number(fit_max_compute, "--fit-max-compute", minimum=0, min_open=True)
    all_cols, all_groups, _ = _load(runs, ("C",), n_col, d_col, c_col, loss_col, group_col)
    cols, groups, _ = _load(runs, ("C",), n_col, d_col, c_col, loss_col, group_col, final_only)
    if groups is not None:  # only runs that end within the budget: no partial results of larger runs (GPT-4 §3.1)
        final_c = {g: c for g, c in zip(all_groups, all_cols["C"])}  # rows are in step order: last one wins
        inside = np.array([final_c[g] <= fit_max_compute for g in groups])
        cols, groups = {k: v[inside] for k, v in cols.items()}, groups[inside]
    actual = {}
    for name in target_run:
        idx = np.flatnonzero(all_groups == name) if all_groups is not None else []
        if len(idx) == 0:
            raise DataError(f"target run '{name}' not in {runs}", f"use a value of the {group_col} column")
        targets.append(float(all_cols["C"][idx[-1]]))
        actual[targets[-1]] = float(all_cols["loss"][idx[-1]])
    for t in targets:  # an existing row at the target compute (within 0.5%) gives the actual loss
        near = np.flatnonzero(np.abs(all_cols["C"] / t - 1) < 5e-3)
        if t not in actual and len(near):
            actual[t] = float(all_cols["loss"][near].min())
    if not targets:
        raise DataError("no prediction target", "pass --target C* and/or --target-run NAME")
    r = predict_extrapolation(cols["C"], cols["loss"], fit_max_compute, targets, use_frontier=use_frontier,
                              bootstrap=bootstrap, seed=seed, groups=groups, actual=actual,
                              allow_partial_bootstrap=allow_partial_bootstrap, **given(law=law))
    res = r.pop("_fit")
    if plot is not None:
        from lmlab.scaling.plots import fit_plot

        sel = cols["C"] <= fit_max_compute
        ex = {"actual (held out)": (np.array(list(actual)), np.array(list(actual.values())))} if actual else None
        fit_plot(res, cols["C"][sel], cols["loss"][sel], plot, "C", ex, x_max=max(targets),
                 title=f"{res.law}: fit on C <= {fit_max_compute:.3g}, extrapolated")
    _emit(r, json_, out)


@app.command("allocate")
def allocate_cmd(
    budget: str = typer.Option(..., help="Comma-separated compute budgets C (FLOPs)."),
    fit_json: Path = typer.Option(None, "--fit", help="A chinchilla fit JSON (lmlab scaling fit --out)."),
    runs: Path = typer.Option(None, "--runs", help="Or a runs CSV to fit chinchilla on first."),
    bootstrap: int = _BOOT, seed: int = _SEED, allow_partial_bootstrap: bool = _PARTIAL,
    n_col: str = _NCOL, d_col: str = _DCOL, c_col: str = _CCOL, loss_col: str = _LCOL, group_col: str = _GCOL,
    json_: bool = _JSON,
) -> None:
    """Compute-optimal N_opt, D_opt and tokens/param for each budget from a chinchilla fit."""
    from lmlab.errors import DataError
    from lmlab.io import read_json
    from lmlab.scaling.fit import FitResult, fit
    from lmlab.scaling.predict import allocation

    cs = parse_list(budget, "--budget", float, minimum=0, min_open=True, example="1e21,1e22")
    if fit_json is not None:
        j = read_json(fit_json)
        if j.get("law") != "chinchilla":
            raise DataError(f"{fit_json} is a {j.get('law')} fit", "allocation needs a chinchilla fit")
        res = FitResult("chinchilla", j["params"], j.get("ci", {}), j.get("r2", float("nan")), j.get("n_points", 0),
                        j.get("method", "huber"), j.get("objective", float("nan")), 0, 0, {})
    elif runs is not None:
        cols, groups, _ = _load(runs, ("N", "D"), n_col, d_col, c_col, loss_col, group_col)
        res = fit("chinchilla", N=cols["N"], D=cols["D"], loss=cols["loss"], bootstrap=bootstrap, seed=seed,
                  groups=groups, allow_partial_bootstrap=allow_partial_bootstrap, starts=200)
    else:
        raise DataError("nothing to allocate from", "pass --fit FIT.json or --runs CSV")
    _emit({"fit": res.to_json(), "allocation": allocation(res, cs)}, json_, None)


@app.command("critical-batch")
def critical_batch_cmd(
    loss: str = typer.Option(..., help="Comma-separated losses (nats/token)."),
    b_star: float = option(f"{_PRED}:critical_batch", "b_star", help="B_* in tokens (Kaplan et al. 2020)."),
    alpha_b: float = option(f"{_PRED}:critical_batch", "alpha_b", help="alpha_B (Kaplan et al. 2020)."),
    json_: bool = _JSON,
) -> None:
    """Kaplan's critical batch size B_crit(L) = B_* / L^(1/alpha_B), in tokens."""
    import inspect

    from lmlab.scaling.predict import critical_batch

    ls = parse_list(loss, "--loss", float, minimum=0, min_open=True, example="2.5,3")
    check_number(b_star, "--b-star", minimum=0, min_open=True)
    check_number(alpha_b, "--alpha-b", minimum=0, min_open=True)
    default = {k: p.default for k, p in inspect.signature(critical_batch).parameters.items()}
    b_star = default["b_star"] if b_star is None else b_star
    alpha_b = default["alpha_b"] if alpha_b is None else alpha_b
    b = critical_batch(ls, b_star, alpha_b)
    _emit({"loss": ls, "B_crit_tokens": [float(v) for v in b], "B_star": b_star, "alpha_B": alpha_b}, json_, None)


@app.command("slowdown")
def slowdown_cmd(
    baseline: Path = typer.Option(..., help="CSV of the baseline series (e.g. an unfiltered sweep)."),
    runs: Path = _RUNS,
    law: str = option(f"{_PRED}:slowdown", "law", help="Baseline law in C: kaplan-c (log L linear in log C) | gpt4-c."),
    processed_col: str = typer.Option(None, help="Column with actually-processed compute (default: C x "
                                                 "trained_tokens / D when those columns exist)."),
    final_only: bool = typer.Option(False, "--final-only", help="Use only each run's last row (both series)."),
    bootstrap: int = _BOOT, seed: int = _SEED, allow_partial_bootstrap: bool = _PARTIAL,
    n_col: str = _NCOL, d_col: str = _DCOL, c_col: str = _CCOL, loss_col: str = _LCOL, group_col: str = _GCOL,
    out: Path = typer.Option(None, help="Also write the JSON here."),
    json_: bool = _JSON,
) -> None:
    """Compute slowdown: baseline compute needed to match each point's loss, ratio with bootstrap intervals."""
    from lmlab.config import given
    from lmlab.scaling.predict import slowdown
    from lmlab.scaling.table import processed_compute

    base, bgroups, _ = _load(baseline, ("C",), n_col, d_col, c_col, loss_col, group_col, final_only)
    other, _, rows = _load(runs, ("C",), n_col, d_col, c_col, loss_col, group_col, final_only)
    proc = processed_compute(rows, other["C"], processed_col, _columns(n_col, d_col, c_col, loss_col).d, runs)
    r = slowdown(base["C"], base["loss"], other["C"], other["loss"], proc, bootstrap=bootstrap, seed=seed,
                 groups=bgroups, allow_partial_bootstrap=allow_partial_bootstrap, **given(law=law))
    _emit(r, json_, out)

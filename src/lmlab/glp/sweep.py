"""`lmlab glp sweep`: train the depth family on one store, then fit held-out loss vs compute,
L(C) = E + A C^-alpha with C = 6 N D (Kaplan's convention, as the paper: E 0.52, A 435.1, alpha 0.169 on the
Llama-1B family, fitted on all intermediate checkpoints).

The fit is the scaling stage's `gpt4-c` law (lmlab.scaling.fit: Huber on log residuals, multi-start L-BFGS,
E > 0 by construction, bootstrap over checkpoints for 95% intervals). Checkpoints inside the first
`min_frac` of each run (warm-up and the initial plateau, where loss is set by the optimiser's transient rather
than by the compute spent) are shown but not fitted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def fit_rows(rows: list[dict], min_frac: float = 0.1, frontier: bool = False, n_boot: int = 1000,
             seed: int = 0) -> dict:
    """Fit gpt4-c to the runs.csv rows whose step is >= min_frac of their run's last step; frontier=True keeps
    only the compute-efficient frontier among them (Kaplan et al. 2020 §6: L(C) is the lower envelope — a point
    is kept when no point of smaller C has a lower loss)."""
    from lmlab.scaling.fit import fit

    last = {}
    for r in rows:
        last[r["run"]] = max(last.get(r["run"], 0), int(r["step"]))
    keep = sorted((r for r in rows if int(r["step"]) >= min_frac * last[r["run"]] and float(r["C"]) > 0),
                  key=lambda r: float(r["C"]))
    if frontier:
        best, env = float("inf"), []
        for r in keep:
            if float(r["loss"]) < best:
                env.append(r)
                best = float(r["loss"])
        keep = env
    c, y = np.array([float(r["C"]) for r in keep]), np.array([float(r["loss"]) for r in keep])
    result = fit("gpt4-c", loss=y, C=c, bootstrap=n_boot, seed=seed).to_json()
    return {**result, "min_frac": min_frac, "frontier": frontier,
            "fitted": [[r["run"], int(r["step"])] for r in keep]}


def sweep(store: str, out: str | Path, depths: list[int], base_preset: str = "smollm2-d3",
          overrides: list[str] | None = None, progress: bool = True) -> dict:
    """Train one GLP per depth into OUT/d<k>/ (resuming finished or interrupted ones), all rows into
    OUT/runs.csv; fit and plot loss vs compute into OUT/scaling_fit.json and OUT/scaling_fit.png."""
    import json

    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp.train import train_glp
    from lmlab.io import write_json
    from lmlab.runs import checkpoint
    from lmlab.runs.table import read_rows

    out = Path(out)
    for d in depths:
        cfg = apply_overrides(get_preset("glp", base_preset), [f"store={json.dumps(str(store))}",
                              f"net.n_layers={d}", f"runs_csv={json.dumps(str(out / 'runs.csv'))}", *(overrides or [])])
        run = out / f"d{d}"
        if not (run / "summary.json").is_file():
            train_glp(cfg, run, resume=checkpoint.latest(run) is not None, progress=progress)
    rows = read_rows(out / "runs.csv")
    result = {**fit_rows(rows, frontier=True), "all_checkpoints": fit_rows(rows), "depths": depths,
              "rows": len(rows)}
    write_json(out / "scaling_fit.json", result)
    _plot(rows, result, out / "scaling_fit.png")
    return result


def _plot(rows: list[dict], fit: dict, png: Path) -> None:
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    for depth in sorted({r["depth"] for r in rows}, key=int):
        pts = sorted((float(r["C"]), float(r["loss"])) for r in rows if r["depth"] == depth)
        ax.plot(*zip(*pts), marker="o", ms=3, lw=1, label=f"depth {depth}")
    for f, style, what in ((fit, "k--", "frontier"), (fit["all_checkpoints"], "k:", "all checkpoints")):
        fitted = [float(r["C"]) for r in rows if [r["run"], int(r["step"])] in f["fitted"]]
        cs = np.geomspace(min(fitted), max(float(r["C"]) for r in rows), 100)
        p = f["params"]
        ax.plot(cs, p["E"] + p["A"] * cs ** -p["alpha"], style, lw=1,
                label=f"fit, {what}: E={p['E']:.3f}, α={p['alpha']:.3f}, R²={f['r2']:.3f}")
    ax.set(xscale="log", xlabel="training compute C = 6 N D (FLOPs)", ylabel="held-out diffusion loss",
           title="GLP loss vs compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, png)

"""`lmlab glp sweep`: train the depth family on one store, then fit held-out loss vs compute,
L(C) = E + A C^-alpha with C = 6 N D (Kaplan's convention, as the paper: E 0.52, A 435.1, alpha 0.169 on the
Llama-1B family), over every log-spaced checkpoint of every depth.

The fit is a small variable-projection least squares (for each alpha on a fine grid, E and A are linear;
the best alpha is refined by golden-section search), with a bootstrap over checkpoints for 95% intervals.
It is local to this stage until the scaling stage's fitter lands.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _ls(c: np.ndarray, y: np.ndarray, alpha: float) -> tuple[float, float, float]:
    """(E, A, sse) of the linear least-squares fit y ~ E + A c^-alpha."""
    x = np.stack([np.ones_like(c), c ** -alpha], axis=1)
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    r = y - x @ coef
    return float(coef[0]), float(coef[1]), float(r @ r)


def fit_power_law(c, y, alphas=np.geomspace(1e-3, 2.0, 400)) -> dict:
    """Fit L = E + A C^-alpha; returns {E, A, alpha, r2}. C is rescaled internally for conditioning."""
    c, y = np.asarray(c, float), np.asarray(y, float)
    c0 = np.exp(np.log(c).mean())
    sse = [_ls(c / c0, y, a)[2] for a in alphas]
    k = int(np.argmin(sse))
    lo, hi = alphas[max(k - 1, 0)], alphas[min(k + 1, len(alphas) - 1)]
    phi = (np.sqrt(5) - 1) / 2
    for _ in range(60):  # golden-section refinement of alpha inside the bracketing grid cell
        m1, m2 = hi - phi * (hi - lo), lo + phi * (hi - lo)
        if _ls(c / c0, y, m1)[2] < _ls(c / c0, y, m2)[2]:
            hi = m2
        else:
            lo = m1
    alpha = (lo + hi) / 2
    e, a, s = _ls(c / c0, y, alpha)
    return {"E": e, "A": a * c0 ** alpha, "alpha": alpha, "r2": 1 - s / float(((y - y.mean()) ** 2).sum())}


def fit_with_ci(c, y, n_boot: int = 200, seed: int = 0) -> dict:
    """The fit plus 95% bootstrap intervals (resampling checkpoints with replacement)."""
    c, y = np.asarray(c, float), np.asarray(y, float)
    fit = fit_power_law(c, y)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        i = rng.integers(0, len(c), len(c))
        if len(np.unique(c[i])) >= 3:
            boots.append(fit_power_law(c[i], y[i]))
    ci = {k: [float(np.percentile([b[k] for b in boots], 2.5)), float(np.percentile([b[k] for b in boots], 97.5))]
          for k in ("E", "A", "alpha")} if boots else {}
    return {"law": "E + A*C^-alpha", "params": {k: fit[k] for k in ("E", "A", "alpha")}, "ci": ci,
            "r2": fit["r2"], "n_points": len(c)}


def sweep(store: str, out: str | Path, depths: list[int], base_preset: str = "smollm2-d3",
          overrides: list[str] | None = None, progress: bool = True) -> dict:
    """Train one GLP per depth into OUT/d<k>/ (resuming finished or interrupted ones), all rows into
    OUT/runs.csv; fit and plot loss vs compute into OUT/scaling_fit.json and OUT/scaling_fit.png."""
    import json

    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp.train import train_glp
    from lmlab.io import write_json
    from lmlab.lm import checkpoint
    from lmlab.lm.runs import read_rows

    out = Path(out)
    for d in depths:
        cfg = apply_overrides(get_preset("glp", base_preset), [f"store={json.dumps(str(store))}",
                              f"net.n_layers={d}", f"runs_csv={json.dumps(str(out / 'runs.csv'))}", *(overrides or [])])
        run = out / f"d{d}"
        if not (run / "summary.json").is_file():
            train_glp(cfg, run, resume=checkpoint.latest(run) is not None, progress=progress)
    rows = read_rows(out / "runs.csv")
    c = np.array([float(r["C"]) for r in rows])
    y = np.array([float(r["loss"]) for r in rows])
    keep = c > 0
    result = {**fit_with_ci(c[keep], y[keep]), "depths": depths, "rows": len(rows)}
    write_json(out / "scaling_fit.json", result)
    _plot(rows, result, out / "scaling_fit.png")
    return result


def _plot(rows: list[dict], fit: dict, png: Path) -> None:
    from lmlab.report.plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=110)
    for depth in sorted({r["depth"] for r in rows}, key=int):
        pts = sorted((float(r["C"]), float(r["loss"])) for r in rows if r["depth"] == depth)
        ax.plot(*zip(*pts), marker="o", ms=3, lw=1, label=f"depth {depth}")
    cs = np.geomspace(min(float(r["C"]) for r in rows), max(float(r["C"]) for r in rows), 100)
    p = fit["params"]
    ax.plot(cs, p["E"] + p["A"] * cs ** -p["alpha"], "k--", lw=1,
            label=f"fit E={p['E']:.3f}, α={p['alpha']:.3f}, R²={fit['r2']:.3f}")
    ax.set(xscale="log", xlabel="training compute C = 6 N D (FLOPs)", ylabel="held-out diffusion loss",
           title="GLP loss vs compute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    _save(fig, png)

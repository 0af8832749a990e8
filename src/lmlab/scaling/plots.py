"""Scaling plots: loss vs one input with the fit and its 95% bootstrap band plus a residual panel, and
iso-loss contours of a Chinchilla fit with the compute-optimal frontier."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lmlab.report.plots import pyplot, save_png
from lmlab.scaling.fit import FitResult
from lmlab.scaling.laws import get_law


def fit_plot(res: FitResult, x: np.ndarray, loss: np.ndarray, png: str | Path, xname: str = "C",
             extra: dict | None = None, title: str = "", labels=None, x_max: float | None = None) -> Path:
    """Points, fitted curve with CI band (single-input laws) and log residuals vs x. `extra`: name ->
    (x, loss) drawn as held-out markers (e.g. the runs being predicted)."""
    law = get_law(res.law)
    plt = pyplot()
    fig, (ax, axr) = plt.subplots(2, 1, figsize=(6.4, 5.6), dpi=110, height_ratios=[3, 1], sharex=True)
    if labels is None:
        ax.scatter(x, loss, s=12, color="C0", label=f"fit points (n={len(x)})", zorder=3)
    else:
        for j, lab in enumerate(dict.fromkeys(labels)):
            m = np.asarray(labels) == lab
            ax.scatter(x[m], loss[m], s=12, color=f"C{j % 10}", label=str(lab), zorder=3)
    hi_x = max([x.max(), x_max or 0] + [np.max(v[0]) for v in (extra or {}).values()])
    if len(law.inputs) == 1:
        grid = np.geomspace(x.min(), hi_x, 200)
        y, lo, hi = res.predict_ci(**{xname: grid})
        ax.plot(grid, y, "k-", lw=1.2, label=_label(res))
        if res.boot:
            ax.fill_between(grid, lo, hi, color="k", alpha=0.15, lw=0, label="95% bootstrap band")
    for j, (name, (ex, ey)) in enumerate((extra or {}).items()):
        ax.scatter(ex, ey, marker="*", s=90, color=f"C{(j + 3) % 10}", edgecolor="k", label=name, zorder=4)
    inputs = {xname: x} if len(law.inputs) == 1 else None
    if inputs is not None:
        axr.scatter(x, np.log(loss) - np.log(res.predict(**inputs)), s=8, color="C0")
    axr.axhline(0, color="k", lw=0.8)
    ax.set(xscale="log", ylabel="loss", title=title or f"{res.law} fit, R² = {res.r2:.4f}")
    axr.set(xscale="log", xlabel=xname, ylabel="log residual")
    ax.grid(alpha=0.3)
    axr.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, png)


def _label(res: FitResult) -> str:
    return "fit: " + ", ".join(f"{k}={v:.4g}" for k, v in res.params.items())


def residual_plot(res: FitResult, arrays: dict, png: str | Path, title: str = "") -> Path:
    """Log residuals vs the prediction (any law, including two-input ones)."""
    law = get_law(res.law)
    pred = res.predict(**{k: arrays[k] for k in law.inputs})
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.4), dpi=110)
    ax.scatter(pred, np.log(arrays["loss"]) - np.log(pred), s=8)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel="predicted loss", ylabel="log(observed) − log(predicted)", title=title or f"{res.law} residuals")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_png(fig, png)


def isoloss_plot(res: FitResult, n: np.ndarray, d: np.ndarray, loss: np.ndarray, png: str | Path,
                 title: str = "") -> Path:
    """Chinchilla fit: iso-loss contours over (N, D), the points, and the compute-optimal N_opt(C) line."""
    from lmlab.scaling.predict import compute_optimal

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    ng = np.geomspace(n.min() / 2, n.max() * 2, 120)
    dg = np.geomspace(d.min() / 2, d.max() * 2, 120)
    nn, dd = np.meshgrid(ng, dg)
    ll = res.predict(N=nn, D=dd)
    cs = ax.contour(nn, dd, ll, levels=12, cmap="viridis", linewidths=0.8)
    ax.clabel(cs, fontsize=6, fmt="%.2f")
    sc = ax.scatter(n, d, c=loss, s=10, cmap="viridis", edgecolor="k", linewidths=0.2)
    fig.colorbar(sc, ax=ax, label="observed loss")
    c = np.geomspace(6 * ng.min() * dg.min(), 6 * ng.max() * dg.max(), 50)
    no, do = compute_optimal(res.params, c)
    m = (no >= ng.min()) & (no <= ng.max()) & (do >= dg.min()) & (do <= dg.max())
    ax.plot(no[m], do[m], "r--", lw=1.2, label="compute-optimal N_opt(C), D_opt(C)")
    ax.set(xscale="log", yscale="log", xlabel="N (parameters)", ylabel="D (tokens)",
           title=title or "Chinchilla fit: iso-loss contours")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return save_png(fig, png)

"""PNG plots from the JSON/JSONL every stage writes (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, out_png: str | Path) -> Path:
    """Write a figure to PNG atomically and close it."""
    from lmlab.io import atomic_path

    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    pyplot().close(fig)
    return out_png


def loss_curve(metrics_jsonl: str | Path, out_png: str | Path, title: str = "training loss") -> Path:
    """Train loss per step, plus held-out loss per domain at each eval step."""
    from lmlab.io import read_jsonl

    rows = read_jsonl(metrics_jsonl, own_log=True)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r and "eval" not in r]
    evals = [(r["step"], r["eval"]) for r in rows if "eval" in r]
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    if train:
        ax.plot(*zip(*train), lw=1, color="0.4", label="train")
    for key in sorted({k for _, e in evals for k in e if k.startswith("loss_") or k == "heldout_loss"}):
        pts = [(s, e[key]) for s, e in evals if key in e]
        ax.plot(*zip(*pts), marker="o", ms=3, label=f"held-out {key.removeprefix('loss_').removesuffix('_loss')}")
    ax.set(xlabel="step", ylabel="cross-entropy (nats/token)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, out_png)


def pca_scatter(x, labels, names: list[str], out_png: str | Path, title: str = "PCA") -> Path:
    """First two principal components of x (n, d) (centred, via SVD), one colour per label."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    xc = x - x.mean(0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    pcs = xc @ vt[:2].T  # (n, 2)
    var = (s[:2] ** 2) / (s**2).sum()
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=110)
    labels = np.asarray(labels)
    for k, name in enumerate(names):
        sel = labels == k
        if sel.any():
            ax.scatter(pcs[sel, 0], pcs[sel, 1], s=3, alpha=0.5, label=f"{name} ({sel.sum()})")
    ax.set(xlabel=f"PC1 ({100 * var[0]:.1f}% var)", ylabel=f"PC2 ({100 * var[1]:.1f}% var)", title=title)
    ax.legend(fontsize=8, markerscale=4)
    fig.tight_layout()
    return save_png(fig, out_png)

"""PNG plots from the JSON/JSONL every stage writes (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def loss_curve(metrics_jsonl: str | Path, out_png: str | Path, title: str = "training loss") -> Path:
    """Train loss per step, plus held-out loss per domain at each eval step."""
    from lmlab.io import atomic_path, read_jsonl

    rows = read_jsonl(metrics_jsonl)
    train = [(r["step"], r["loss"]) for r in rows if "loss" in r and "eval" not in r]
    evals = [(r["step"], r["eval"]) for r in rows if "eval" in r]
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    if train:
        ax.plot(*zip(*train), lw=1, color="0.4", label="train")
    for key in sorted({k for _, e in evals for k in e if k.startswith("loss_")}):
        pts = [(s, e[key]) for s, e in evals if key in e]
        ax.plot(*zip(*pts), marker="o", ms=3, label=f"held-out {key.removeprefix('loss_')}")
    ax.set(xlabel="step", ylabel="cross-entropy (nats/token)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png = Path(out_png)
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return out_png

"""Paired held-out comparison of filtered runs (Rathi & Radford 2026 §4.3's forget-vs-retain trade-off; reference
§2.10): every run's final model is scored on the same fixed windows of each held-out domain, and a run's loss gap
to the unfiltered baseline of the same size and seed gets a percentile bootstrap interval over windows (paired:
both models see the same windows, so the window-to-window spread of difficulty cancels).

Forget = medical, retain = biology: a good filter raises the forget loss (the gap is its cost for the model) while
leaving the retain loss where it was. The frontier plot puts every run at (retain gap, forget gap).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DOMAINS = ("medical", "biology", "general")


def window_losses(run_dir: str | Path, data: str | Path, domains=DOMAINS, seq_len: int = 128,
                  max_windows: int = 400, batch: int = 32) -> dict[str, np.ndarray]:
    """{domain: (n_windows,) mean next-token loss of each fixed window of DATA/val.<domain>.bin} for one run."""
    import torch
    import torch.nn.functional as F

    from lmlab.data.shards import eval_starts, open_shard, windows
    from lmlab.errors import DataError
    from lmlab.lm.train import load_run_model

    model, _ = load_run_model(run_dir)
    out = {}
    for dom in domains:
        path = Path(data) / f"val.{dom}.bin"
        if not path.is_file():
            raise DataError(f"{data} has no held-out set for domain {dom!r}",
                            "prepare the dataset from a corpus with that domain (e.g. --corpus embedded-pages)")
        shard = open_shard(path)
        starts = eval_starts(shard, seq_len, max_windows)
        losses = []
        with torch.no_grad():
            for i in range(0, len(starts), batch):
                x, y, _, _ = windows(shard, starts[i:i + batch], seq_len)
                logits = model(x)  # (B, T, V)
                ce = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), reduction="none")
                losses.append(ce.view(y.shape).mean(1).numpy())  # (B,)
        out[dom] = np.concatenate(losses).astype(np.float64)
    return out


def paired_gaps(runs: dict[str, str | Path], baseline: str | Path, data: str | Path, domains=DOMAINS,
                seq_len: int = 128, max_windows: int = 400, n_boot: int = 2000, seed: int = 0) -> dict:
    """{"baseline": {domain: loss}, "runs": {name: {domain: {loss, gap, ci95}}}}: each run's mean window loss and
    its paired gap to the baseline with a 95% bootstrap interval (the same window resamples for every run)."""
    from lmlab.glp.stats import paired_resamples

    base = window_losses(baseline, data, domains, seq_len, max_windows)
    idx = {d: paired_resamples(len(v), n_boot, seed) for d, v in base.items()}  # (n_boot, n_windows)
    res: dict = {"baseline": {d: float(v.mean()) for d, v in base.items()},
                 "windows": {d: len(v) for d, v in base.items()}, "seq_len": seq_len, "runs": {}}
    for name, run in runs.items():
        mine = window_losses(run, data, domains, seq_len, max_windows)
        res["runs"][name] = {}
        for d in domains:
            diff = mine[d] - base[d]
            boots = diff[idx[d]].mean(1)
            res["runs"][name][d] = {"loss": float(mine[d].mean()), "gap": float(diff.mean()),
                                    "ci95": [float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975))]}
    return res


def frontier_plot(result: dict, labels: dict[str, dict], png: str | Path, forget: str = "medical",
                  retain: str = "biology") -> Path:
    """Forget-vs-retain frontier: each run at (retain gap, forget gap) with its 95% intervals; `labels` maps a
    run name to {"series", "text"} (the series colours the point, the text annotates it, e.g. the flagged share)."""
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.2), dpi=110)
    for series in sorted({v["series"] for v in labels.values()}):
        names = [n for n, v in labels.items() if v["series"] == series and n in result["runs"]]
        pts = sorted(((result["runs"][n][retain], result["runs"][n][forget], labels[n]["text"]) for n in names),
                     key=lambda p: p[0]["gap"])
        xs, ys = [p[0]["gap"] for p in pts], [p[1]["gap"] for p in pts]
        xerr = np.array([[x - p[0]["ci95"][0], p[0]["ci95"][1] - x] for x, p in zip(xs, pts)]).T
        yerr = np.array([[y - p[1]["ci95"][0], p[1]["ci95"][1] - y] for y, p in zip(ys, pts)]).T
        ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="o-", ms=4, capsize=2, label=series)
        for x, y, p in zip(xs, ys, pts):
            ax.annotate(p[2], (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax.axhline(0, color="k", lw=0.5)
    ax.axvline(0, color="k", lw=0.5)
    ax.set(xlabel=f"retain ({retain}) loss − baseline (nats)", ylabel=f"forget ({forget}) loss − baseline (nats)",
           title="forget vs retain cost of filtering (95% CI)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, png)


__all__ = ["DOMAINS", "frontier_plot", "paired_gaps", "window_losses"]

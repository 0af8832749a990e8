"""Plots of HumanEval summaries: pass@k (and the reranked pass@1) with bootstrap CIs, and what the samples did."""

from __future__ import annotations

from pathlib import Path

OUTCOMES = ("passed", "wrong answer", "syntax error", "runtime error", "timed out")


def outcome(result: str) -> str:
    """Bucket a verdict string: passed / wrong answer (assertion) / syntax error / runtime error / timed out."""
    if result == "passed" or result == "timed out":
        return result
    if result.startswith(("failed: AssertionError", "failed: ")) and "AssertionError" in result.split(":")[1]:
        return "wrong answer"
    if any(e in result for e in ("SyntaxError", "IndentationError", "TabError")):
        return "syntax error"
    return "runtime error"


def plot_summaries(summaries: dict[str, dict], out_png: str | Path, title: str = "HumanEval") -> Path:
    """Left: pass@k per run with 95% bootstrap CIs (reranked pass@1 when present). Right: outcome shares."""
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4))
    labels = list(summaries)
    metrics = sorted({k for s in summaries.values() for k in s if k.startswith("pass@")}, key=lambda k: int(k[5:]))
    has_rerank = any("reranked_pass@1" in s for s in summaries.values())
    names = metrics + (["reranked pass@1"] if has_rerank else [])
    width = 0.8 / max(1, len(labels))
    for i, lab in enumerate(labels):
        s = summaries[lab]
        vals, errs = [], [[], []]
        for m in names:
            v, ci = (s["reranked_pass@1"]["pass@1"], s["reranked_pass@1"]["ci"]) if m.startswith("reranked") \
                else (s.get(m, float("nan")), s.get("ci", {}).get(m, [float("nan")] * 2))
            vals.append(v)
            errs[0].append(max(0.0, v - ci[0]))
            errs[1].append(max(0.0, ci[1] - v))
        xs = [j + i * width for j in range(len(names))]
        ax.bar(xs, vals, width, yerr=errs, capsize=3, label=lab)
    ax.set_xticks([j + width * (len(labels) - 1) / 2 for j in range(len(names))], names)
    ax.set_ylabel("fraction of problems")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"{title}: pass@k (95% bootstrap CI over problems)")
    ax.legend(fontsize=8)
    bottom = [0.0] * len(labels)
    for o in OUTCOMES:
        share = [summaries[lab].get("outcomes", {}).get(o, 0) / max(1, summaries[lab]["n_samples"]) for lab in labels]
        bx.bar(labels, share, bottom=bottom, label=o)
        bottom = [b + v for b, v in zip(bottom, share)]
    bx.set_ylabel("share of samples")
    bx.set_title("what the samples did")
    bx.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, out_png)

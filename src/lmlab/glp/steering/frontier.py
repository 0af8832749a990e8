"""Matched-concept frontiers (issue 19): compare steering conditions at the SAME concept score, not the same r.

Each label (a mode at one position rule and sigma_s) is a curve of (concept, fluency) points along its r grid.
Its monotone frontier is the rising branch up to the r of peak concept, thinned to its records (points whose
concept exceeds every earlier one), so concept increases strictly along it; a fluency metric (NLL, distinct-2,
fluent rate) is linearly interpolated on it at a grid of matched concept levels strictly inside the range both a
label and its baseline (plain steering at the same positions) reach. CIs: percentile bootstrap over prompts, PAIRED
(every condition ran on the same prompts, so one resample of prompt indices is applied to all of them and the
whole frontier is re-derived per resample; Efron & Tibshirani 1993 ch. 13). A difference is reported where at
least half of the resamples define it at that level (`frac_defined`).

Saturation: a label's concept has saturated when its peak lies before the largest r, or the last step of r adds
less than SAT_TOL to the mean concept score.
"""

from __future__ import annotations

import numpy as np

SAT_TOL = 0.02
METRICS = ("nll", "distinct2", "fluent")


def frontier_interp(c: np.ndarray, y: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """y interpolated at concept `levels` along the monotone frontier of r-ordered points (c (k,), y (k,));
    NaN outside it."""
    peak = int(np.argmax(c))
    c, y = c[: peak + 1], y[: peak + 1]
    rec = np.concatenate([[True], c[1:] > np.maximum.accumulate(c)[:-1]])  # records: strictly rising
    return np.interp(levels, c[rec], y[rec], left=np.nan, right=np.nan)


def _ci(x: np.ndarray, level: float = 0.95) -> dict:
    a = (1 - level) / 2
    return {"lo": float(np.quantile(x, a)), "hi": float(np.quantile(x, 1 - a))}


def _curves(conds: list[dict], label: str, keys, idx: np.ndarray) -> tuple[list[float], dict]:
    """r grid of a label and, per key, (point (k,), resampled (n_boot, k)) means."""
    cs = sorted((c for c in conds if c["label"] == label), key=lambda c: c["r"])
    out = {}
    for k in keys:
        v = np.stack([np.asarray(c[k], dtype=np.float64) for c in cs])  # (k, n)
        out[k] = (v.mean(1), v[:, idx].mean(2).T)  # (k,), (n_boot, k)
    return [c["r"] for c in cs], out


def saturated(r: list[float], c: np.ndarray, tol: float = SAT_TOL) -> bool:
    """Peak before the largest r, or the last r step adds < tol to the concept score."""
    peak = int(np.argmax(c))
    return bool(peak < len(c) - 1 or (len(c) > 1 and c[-1] - c[-2] < tol))


def _pair(lab, base, cur, concept_key, metrics, n_levels, level) -> list[dict]:
    """Matched-concept differences label - baseline for every metric at n_levels shared concept levels."""
    (c_m, C_m), (c_b, C_b) = cur[lab][1][concept_key], cur[base][1][concept_key]
    lo = max(c_m[0], c_b[0])
    hi = min(c_m[: np.argmax(c_m) + 1].max(), c_b[: np.argmax(c_b) + 1].max())
    if not hi > lo:
        return []
    levels, rows = np.linspace(lo, hi, n_levels + 2)[1:-1], []  # interior: the ends wobble per resample
    for k in metrics:
        (y_m, Y_m), (y_b, Y_b) = cur[lab][1][k], cur[base][1][k]
        pm, pb = frontier_interp(c_m, y_m, levels), frontier_interp(c_b, y_b, levels)
        D = np.stack([frontier_interp(C_m[j], Y_m[j], levels) - frontier_interp(C_b[j], Y_b[j], levels)
                      for j in range(len(C_m))])  # (n_boot, n_levels)
        ok = ~np.isnan(D).any(1)
        avg = D[ok].mean(1)  # mean gap over the shared range, replicates defining every level
        for i, x in enumerate(levels):
            d = D[~np.isnan(D[:, i]), i]
            frac = len(d) / len(D)
            rows.append({"label": lab, "baseline": base, "metric": k, "level": float(x), "value": float(pm[i]),
                         "baseline_value": float(pb[i]), "diff": float(pm[i] - pb[i]), "frac_defined": frac,
                         **(_ci(d, level) if frac >= 0.5 else {"lo": None, "hi": None})})
        rows.append({"label": lab, "baseline": base, "metric": k, "level": "mean", "diff": float(np.mean(pm - pb)),
                     "frac_defined": float(ok.mean()),
                     **(_ci(avg, level) if ok.mean() >= 0.5 else {"lo": None, "hi": None})})
    return rows


def matched_frontier(conds: list[dict], concept_key: str = "probe", metrics=METRICS, n_levels: int = 7,
                     n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> dict:
    """conds: one dict per condition with "label", "baseline" (the label it is compared with, or None), "r" and
    per-prompt lists (n,) of concept_key and every metric, all on the same n prompts. -> {"frontiers": per label
    the r grid, means with CIs, saturation, peak r; "matched": rows of matched-concept differences (label -
    baseline) per metric and level, plus a "mean" row over the shared range}."""
    from lmlab.glp.stats import paired_resamples

    n = len(conds[0][concept_key])
    idx = paired_resamples(n, n_boot, seed)  # (n_boot, n), shared by every condition
    labels = list(dict.fromkeys(c["label"] for c in conds))
    cur = {lab: _curves(conds, lab, (concept_key, *metrics), idx) for lab in labels}
    fronts = {}
    for lab, (rs, cv) in cur.items():
        fronts[lab] = {"r": rs, "saturated": saturated(rs, cv[concept_key][0]),
                       "r_peak": rs[int(np.argmax(cv[concept_key][0]))],
                       **{k: [{"mean": float(m), **_ci(cv[k][1][:, i], level)}
                              for i, m in enumerate(cv[k][0])]
                          for k in (concept_key, *metrics)}}
    base = {c["label"]: c.get("baseline") for c in conds}
    matched = [row for lab in labels if base[lab] in cur and base[lab] != lab
               for row in _pair(lab, base[lab], cur, concept_key, metrics, n_levels, level)]
    return {"concept_key": concept_key, "n_prompts": n, "n_boot": n_boot, "frontiers": fronts, "matched": matched}


def frontier_plot(res: dict, png, title: str = "steering frontier") -> object:
    """2 x 2: concept vs NLL, vs distinct-2, vs fluent rate (95% CI both axes, labels r), and the matched-concept
    NLL difference to the baseline with its CI."""
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(11, 8.2), dpi=100)
    ck = res["concept_key"]
    for ax, k in zip(axes.flat[:3], METRICS):
        for lab, f in res["frontiers"].items():
            x, y = f[ck], f[k]
            err = lambda v: [[p["mean"] - p["lo"] for p in v], [p["hi"] - p["mean"] for p in v]]
            ax.errorbar([p["mean"] for p in x], [p["mean"] for p in y], xerr=err(x), yerr=err(y), marker="o", ms=3,
                        capsize=2, lw=1, label=lab)
            for r, px, py in zip(f["r"], x, y):
                ax.annotate(f"{r:g}", (px["mean"], py["mean"]), fontsize=5, xytext=(2, 2), textcoords="offset points")
        ax.set(xlabel=f"concept score ({ck})", ylabel=k)
        ax.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=6)
    ax = axes.flat[3]
    for lab in dict.fromkeys(m["label"] for m in res["matched"]):
        rows = [m for m in res["matched"] if m["label"] == lab and m["metric"] == "nll" and m["level"] != "mean"]
        ok = [m for m in rows if m["lo"] is not None]
        ax.errorbar([m["level"] for m in ok], [m["diff"] for m in ok],
                    yerr=[[m["diff"] - m["lo"] for m in ok], [m["hi"] - m["diff"] for m in ok]], marker="o", ms=3,
                    capsize=2, lw=1, label=f"{lab} - {rows[0]['baseline']}" if rows else lab)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xlabel=f"matched concept score ({ck})", ylabel="NLL difference (negative = more fluent than baseline)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.suptitle(f"{title} (95% paired bootstrap CIs over prompts)")
    fig.tight_layout()
    return save_png(fig, png)

"""Compute slowdown of filtered pretraining (Rathi & Radford 2026 §4.2, §B.1; reference §2.10): fit the baseline
series' held-out loss as a power law in compute (log L linear in log C, `scaling.predict.slowdown`), and for every
filtered run find the baseline compute reaching the same loss; the ratio C / C_baseline (> 1: filtering made the
domain as costly to learn as a baseline with that much less compute) per series, size and domain — forget
(medical) and retain (biology) — against nominal compute 6·N·D and against compute actually processed, with
bootstrap intervals over the baseline's sizes.
"""

from __future__ import annotations

from pathlib import Path


def filter_slowdown(sweep_json: str | Path, domains: tuple[str, ...] | None = None, law: str = "kaplan-c",
                    bootstrap: int = 1000, seed: int = 0) -> dict:
    """{domain: {series: [per run: size, seed, C, loss, C_baseline, slowdown_nominal(_ci), slowdown_processed(_ci)]}}
    from a filter sweep's sweep.json."""
    import numpy as np

    from lmlab.errors import DataError
    from lmlab.io import read_json
    from lmlab.scaling.predict import slowdown

    sw = read_json(sweep_json)
    rows = sw["runs"]
    domains = domains or sw.get("config", {}).get("domains", ["medical", "biology", "general"])  # the sweep's own
    base = [r for r in rows if r["series"] == "baseline"]
    if len({r["size"] for r in base}) < 3:
        raise DataError(f"{sweep_json}: the baseline has {len({r['size'] for r in base})} sizes",
                        "a baseline power law needs runs at >= 3 sizes")
    out: dict = {"law": law, "bootstrap": bootstrap, "domains": {}}
    for dom in domains:
        col = f"loss_{dom}"
        if any(col not in r for r in rows):
            raise DataError(f"{sweep_json} has no {col} for every run", f"prepare the dataset with a {dom} val set")
        per = {}
        for series in sorted({r["series"] for r in rows} - {"baseline"}):
            pts = [r for r in rows if r["series"] == series]
            sd = slowdown(np.array([b["c_nominal"] for b in base]), np.array([b[col] for b in base]),
                          [p["c_nominal"] for p in pts], [p[col] for p in pts],
                          c_processed=[p["c_processed"] for p in pts], law=law, bootstrap=bootstrap, seed=seed,
                          groups=[b["size"] for b in base], allow_partial_bootstrap=True)
            per[series] = [{"size": p["size"], "seed": p["seed"], **q} for p, q in zip(pts, sd["points"])]
            out.setdefault("baseline_fit", {})[dom] = sd["baseline_fit"]
        out["domains"][dom] = per
    return out


def slowdown_plot(sweep_json: str | Path, result: dict, png: str | Path) -> Path:
    """Held-out loss vs nominal compute per series, one panel per domain, with the baseline's fitted law."""
    import numpy as np

    from lmlab.io import read_json
    from lmlab.report.plots import pyplot, save_png
    from lmlab.scaling.laws import get_law

    plt = pyplot()
    rows = read_json(sweep_json)["runs"]
    doms = list(result["domains"])
    fig, axes = plt.subplots(1, len(doms), figsize=(4.2 * len(doms), 3.6), dpi=110, squeeze=False)
    for ax, dom in zip(axes[0], doms):
        for series in sorted({r["series"] for r in rows}):
            pts = sorted((r["c_nominal"], r[f"loss_{dom}"]) for r in rows if r["series"] == series)
            ax.plot(*zip(*pts), "o-" if series == "baseline" else "s--", label=series, ms=4)
        base_c = np.array([r["c_nominal"] for r in rows if r["series"] == "baseline"])
        cc = np.geomspace(base_c.min(), base_c.max(), 50)
        ax.plot(cc, get_law(result["law"]).predict(result["baseline_fit"][dom]["params"], C=cc), "k:", lw=1,
                label="baseline fit" if dom == doms[0] else None)
        ax.set(xscale="log", yscale="log", xlabel="C = 6·N·D (nominal FLOPs)", ylabel=f"held-out loss ({dom})",
               title=dom)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, png)

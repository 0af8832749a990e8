"""Issue 19 part 4: does downstream utility follow the GLP's loss? (the paper's utility-vs-loss figure, GLP §5)

Across the GLPs of the recipe ablation (experiments/glp_ablation.py: every cell and seed, one store), plus any
LABEL=SPEC given (e.g. a `glp sweep` depth family on the same store):
  * held-out diffusion loss on ONE common set (probe.glp_heldout_loss: the store's held-out rows, uniform σ,
    fixed noise — the trainers' own held-out sets weight σ by their training distribution, so a logit-normal
    run's logged loss is not comparable);
  * 1-step and 10-step ΔLM (from the ablation's cell JSONs; per-document sums, the same 200 documents);
  * mean 1-D meta-neuron probing AUC (probe.probe_family: 12 tasks, σ = 0.1) for the GLPs of `--probe-seeds`.
Trend: ordinary least squares utility = a + b · loss and Spearman's ρ, each with a 95% bootstrap CI over GLPs
(GLPs resampled with replacement). Writes OUT/utility_vs_loss.json and OUT/utility_vs_loss.png; the probing
rows are cached in OUT/probe_rows.json (a rerun reuses them).

Run: python experiments/glp_utility_vs_loss.py --store STORE --ablation ABL --runs RUNS --out OUT [LABEL=SPEC ...]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True)
    p.add_argument("--ablation", required=True, help="glp_ablation.py --out (cells/<cell>/s<seed>.json)")
    p.add_argument("--runs", required=True, help="glp_ablation.py --runs (GLP run directories)")
    p.add_argument("--out", required=True)
    p.add_argument("--probe-seeds", default="0", help="seeds whose GLPs are probed (probing costs ~1 min each)")
    p.add_argument("--docs-per-domain", type=int, default=60)
    p.add_argument("--n-boot", type=int, default=4000)
    p.add_argument("specs", nargs="*", help="extra LABEL=SPEC GLPs (probed; no ΔLM unless given by the ablation)")
    return p.parse_args(argv)


def ols_trend(x, y, n_boot: int = 4000, seed: int = 0) -> dict:
    """y = a + b x by least squares, Spearman's rho; 95% percentile bootstrap CIs resampling the (x, y) pairs."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    b, a = np.polyfit(x, y, 1)
    rng = np.random.default_rng(seed)
    slopes, rhos = [], []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) == 0:
            continue
        slopes.append(np.polyfit(x[i], y[i], 1)[0])
        rhos.append(spearmanr(x[i], y[i]).statistic)
    rho = float(spearmanr(x, y).statistic)
    q = lambda v: [float(np.nanquantile(v, 0.025)), float(np.nanquantile(v, 0.975))]  # noqa: E731
    return {"n": len(x), "intercept": float(a), "slope": float(b), "slope_ci95": q(slopes), "spearman": rho,
            "spearman_ci95": q(rhos), "r2": float(1 - np.sum((y - a - b * x) ** 2) / np.sum((y - y.mean()) ** 2))}


def collect(args) -> list[dict]:
    """One row per ablation GLP: common held-out loss and its ΔLMs (from the cell JSON). A GLP whose run directory
    is gone (runs live on one machine, cell JSONs are committed) keeps the loss of OUT/utility_vs_loss.json."""
    from lmlab.acts.store import ActivationStore
    from lmlab.glp.load import load_glp
    from lmlab.glp.probe import glp_heldout_loss
    from lmlab.io import read_json

    store = ActivationStore.open(args.store)
    prev = Path(args.out) / "utility_vs_loss.json"
    cached = {r["glp"]: r["common_heldout_loss"] for r in read_json(prev)["rows"]} if prev.is_file() else {}
    rows = []
    for f in sorted(Path(args.ablation, "cells").glob("*/s*.json")):
        r = read_json(f)
        run, label = Path(args.runs) / r["cell"] / f"s{r['seed']}", f"{r['cell']}/s{r['seed']}"
        if (run / "glp.safetensors").is_file():
            loss = glp_heldout_loss(load_glp(run), store)
        elif label in cached:
            loss = cached[label]
        else:
            print(f"{label}: no run directory and no cached loss; left out", flush=True)
            continue
        rows.append({"glp": label, "cell": r["cell"], "seed": r["seed"], "common_heldout_loss": loss,
                     "delta_glp_1step": r["delta_lm"]["delta_glp_1step"],
                     "delta_glp_10step": r["delta_lm"]["delta_glp_10step"], "acc_100step": r["acc_100step"]})
        print(f"{label}: loss {loss:.4f}", flush=True)
    return rows


def probe_rows(args, rows: list[dict]) -> list[dict]:
    """Mean 1-D meta AUC for the probed GLPs, cached in OUT/probe_rows.json: a rerun probes only the GLPs of
    --probe-seeds (and specs) not in the cache whose run directory exists."""
    from lmlab.glp.load import load_glp
    from lmlab.glp.probe import ProbeConfig, probe_family
    from lmlab.io import read_json, write_json

    cache = Path(args.out) / "probe_rows.json"
    done = read_json(cache)["rows"] if cache.is_file() else []
    have = {p["glp"] for p in done}
    seeds = {int(s) for s in args.probe_seeds.split(",")}
    runs = {r["glp"]: Path(args.runs) / r["cell"] / f"s{r['seed']}" for r in rows if r["seed"] in seeds}
    specs = dict(s.split("=", 1) for s in args.specs)  # run dirs, official folders or hub ids: always probed
    runs.update(specs)
    todo = {k: load_glp(v) for k, v in runs.items() if k not in have and (k in specs or Path(v).exists())}
    if todo:
        done = done + probe_family(todo, ProbeConfig(store=args.store, docs_per_domain=args.docs_per_domain), 0.1)
        write_json(cache, {"rows": done, "docs_per_domain": args.docs_per_domain, "sigma": 0.1})
    return done


def plot(result: dict, png: Path) -> None:
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    panels = [("delta_glp_1step", "ΔLM, 1 step (nats)"), ("delta_glp_10step", "ΔLM, 10 steps (nats)"),
              ("meta_auc", "mean 1-D meta-neuron AUC")]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), dpi=110)
    for ax, (key, label) in zip(axes, panels):
        pts = [(r["common_heldout_loss"], r[key]) for r in result["rows"] if r.get(key) is not None]
        if not pts:
            continue
        x, y = map(np.array, zip(*pts))
        ax.scatter(x, y, s=14)
        t = result["trends"][key]
        xs = np.linspace(x.min(), x.max(), 50)
        ax.plot(xs, t["intercept"] + t["slope"] * xs, "k--", lw=1,
                label=f"slope {t['slope']:.2f} [{t['slope_ci95'][0]:.2f}, {t['slope_ci95'][1]:.2f}], "
                      f"ρ {t['spearman']:.2f} [{t['spearman_ci95'][0]:.2f}, {t['spearman_ci95'][1]:.2f}]")
        ax.set(xlabel="held-out diffusion loss (common set, uniform σ)", ylabel=label)
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle("Does utility follow the GLP's loss? (one point per GLP; OLS fit, 95% bootstrap CI over GLPs)")
    fig.tight_layout()
    save_png(fig, png)


def main(argv=None) -> int:
    from lmlab.io import write_json

    args = parse_args(argv)
    out = Path(args.out)
    rows = collect(args)
    by_label = {r["glp"]: r for r in rows}
    for p in probe_rows(args, rows):
        row = by_label.setdefault(p["glp"], {"glp": p["glp"], "common_heldout_loss": p["heldout_loss"]})
        row["meta_auc"], row["meta_auc_ci95"] = p["meta"]["mean"], [p["meta"]["lo"], p["meta"]["hi"]]
        row["raw_auc"] = p["raw"]["mean"]
    rows = list(by_label.values())
    trends = {}
    for key in ("delta_glp_1step", "delta_glp_10step", "meta_auc"):
        pts = [(r["common_heldout_loss"], r[key]) for r in rows if r.get(key) is not None]
        if len(pts) >= 3:
            trends[key] = ols_trend(*zip(*pts), n_boot=args.n_boot)
    result = {"rows": rows, "trends": trends, "store": "STORE",
              "command": "python experiments/glp_utility_vs_loss.py --store STORE --ablation ABL --runs RUNS --out OUT"}
    write_json(out / "utility_vs_loss.json", result)
    plot(result, out / "utility_vs_loss.png")
    print(json.dumps(trends, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

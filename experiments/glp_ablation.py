"""Issue 19 part 1: which GLP recipe choices matter — one factor at a time from a fixed base, several seeds.

Every cell is the base recipe with one change (CELLS below); every (cell, seed) trains a GLP on the store, then
is scored on the same held-out material:
  * ΔLM (GLP §3): SmolLM2's layer-L residual at every non-BOS position of the first `--delta-docs` val documents
    replaced by the GLP's reconstruction from sigma_s = 0.4742 (fresh noise), 1 Euler step (x0 estimate) and the
    paper's 10 steps; per-document sums kept so intervals resample documents *and* seeds;
  * classifier two-sample accuracy of `--n` samples drawn with 100 Euler steps vs held-out real rows (per test row
    correctness kept, same two-level bootstrap);
  * the trainer's held-out diffusion loss (its own fixed held-out set: comparable between cells with the same σ
    distribution only — logit-normal weights the levels differently).
Each finished (cell, seed) writes OUT/cells/<cell>/s<seed>.json at once (commit them as they land); a rerun skips
finished ones and resumes an interrupted training run exactly. `--summarize` (also run at the end) writes
OUT/ablation.json (per cell: mean and 95% two-level bootstrap CI, difference vs base with its CI) and
OUT/ablation.png. Cells run one at a time; wall times and load averages are in each JSON.

Base (ranking-sized; issue 19 allows a smaller base than smollm2-d3): the smollm2-d3 preset's recipe at width
d_model = d, d_mlp = 2 d (d = 576: 9.0M params), depth 3, batch 1024, lr 1e-3, uniform σ (8 strata), no EMA,
bf16 autocast, one pass over a fixed 230,400-row subset of the store's training rows (225 steps). The passes
cells reuse that subset 2 and 4 times; the data cells spend the same compute on 2x and 4x as many distinct rows.

Run: python experiments/glp_ablation.py --store STORE --out OUT [--seeds 0,1,2] [--cells base,ema,...]
     python experiments/glp_ablation.py --out OUT --summarize
     python experiments/glp_ablation.py --store STORE --out OUT --cell best="sigma=\\"logit_normal\\";ema=0.998"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

SUBSET, STEPS = 230_400, 225
BASE = ["net.d_model=576", "net.d_mlp=1152", "net.n_layers=3", f"max_steps={STEPS}", f"train_subset={SUBSET}",
        "ckpt_every=50", "batch_size=1024", "lr=1e-3"]
# cell -> (factor, overrides on top of BASE)
CELLS: dict[str, tuple[str, list[str]]] = {
    "base": ("base", []),
    "sigma_logit_normal": ("σ sampling", ['sigma="logit_normal"']),
    "ema_0.998": ("EMA", ["ema=0.998"]),
    "passes_2": ("passes", [f"max_steps={2 * STEPS}"]),
    "passes_4": ("passes", [f"max_steps={4 * STEPS}"]),
    "data_2x": ("distinct data", [f"max_steps={2 * STEPS}", f"train_subset={2 * SUBSET}"]),
    "data_4x": ("distinct data", [f"max_steps={4 * STEPS}", f"train_subset={4 * SUBSET}"]),
    "width_2x": ("width", ["net.d_model=1152", "net.d_mlp=2304"]),
    "depth_6": ("depth", ["net.n_layers=6"]),
    "lr_0.5x": ("learning rate", ["lr=5e-4"]),
    "lr_2x": ("learning rate", ["lr=2e-3"]),
}
METRICS = ("delta_glp_1step", "delta_glp_10step", "acc_100step")
# same-compute contrasts beside "minus base": more distinct rows vs more passes over the subset
CONTRASTS = (("data_2x", "passes_2"), ("data_4x", "passes_4"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", help="SmolLM2 layer-15 store (lmlab acts harvest), >= 1M rows")
    p.add_argument("--out", required=True, help="OUT/cells/*.json, OUT/ablation.json/.png; GLP runs in --runs")
    p.add_argument("--runs", help="GLP run directories (default OUT/runs; big, not for committing)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated cell names (default: all)")
    p.add_argument("--cell", action="append", default=[],
                   help='extra cell NAME="override;override" on top of the base (e.g. the best combination)')
    p.add_argument("--n", type=int, default=2000, help="GLP samples and held-out real rows for the classifier")
    p.add_argument("--sample-steps", type=int, default=100)
    p.add_argument("--delta-docs", type=int, default=120)
    p.add_argument("--sigma-start", type=float, default=0.4742)
    p.add_argument("--set", dest="overrides", action="append", default=[],
                   help="override applied after the base and the cell (a quick smoke run: --set max_steps=5)")
    p.add_argument("--summarize", action="store_true", help="only aggregate OUT/cells into OUT/ablation.json")
    return p.parse_args(argv)


def cell_table(extra: list[str]) -> dict[str, tuple[str, list[str]]]:
    cells = dict(CELLS)
    for item in extra:
        name, _, ov = item.partition("=")
        if not name or not ov:
            raise SystemExit(f'error: --cell {item!r} is not NAME="override;override"')
        cells[name] = ("combination", [o for o in ov.split(";") if o])
    return cells


def train(store: str, run: Path, overrides: list[str], seed: int) -> tuple[dict, float]:
    """Train (or resume, or reuse) one GLP; returns (its config, training seconds spent in this call)."""
    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp.train import train_glp
    from lmlab.io import read_json
    from lmlab.runs import checkpoint

    cfg = apply_overrides(get_preset("glp", "smollm2-d3"),
                          [f"store={json.dumps(store)}", *BASE, *overrides, f"seed={seed}"])
    t = time.perf_counter()
    if not (run / "summary.json").is_file():
        train_glp(cfg, run, resume=checkpoint.latest(run) is not None, progress=False)
    return read_json(run / "config.json"), time.perf_counter() - t


def score(run: Path, store: str, real, lm, args, base=None) -> dict:
    """ΔLM (1 and 10 steps, per document) and the 100-step classifier test (per test row) of one GLP."""
    from lmlab.glp.evaluate import classifier_correct, delta_lm, generate
    from lmlab.glp.load import load_glp
    from lmlab.io import read_json

    glp = load_glp(run)
    t = time.perf_counter()
    dlm = delta_lm(glp, store, n_docs=args.delta_docs, sigma_start=args.sigma_start,
                   conds=("glp_1step", "glp_10step"), per_doc=True, lm=lm, base=base)
    t_dlm = time.perf_counter() - t
    x = generate(glp, len(real), args.sample_steps, seed=0)
    correct = classifier_correct(real, x, seed=0)
    summary = read_json(run / "summary.json")
    return {"delta_lm": dlm, "acc_100step": float(correct.float().mean()),
            "acc_correct": "".join("1" if c else "0" for c in correct.tolist()),
            "heldout_loss": summary["final_eval"]["heldout_loss"], "params": summary["params"],
            "eval_seconds": {"delta_lm": round(t_dlm, 1), "samples_and_classifier": round(time.perf_counter() - t - t_dlm, 1)}}


def run_cells(args) -> None:
    import torch

    from lmlab.acts.store import ActivationStore
    from lmlab.glp.evaluate import heldout_real
    from lmlab.io import with_placeholders, write_json
    from lmlab.models import load_causal_lm

    out, cells = Path(args.out), cell_table(args.cell)
    runs = Path(args.runs) if args.runs else out / "runs"
    names = [c for c in args.cells.split(",") if c] + [c.partition("=")[0] for c in args.cell]
    if unknown := [c for c in names if c not in cells]:
        raise SystemExit(f"error: unknown cell(s) {unknown}; choose from {', '.join(cells)}")
    store = str(Path(args.store).resolve())
    real = heldout_real(ActivationStore.open(store), args.n, seed=0)[0]
    lm = load_causal_lm(ActivationStore.open(store).model)
    base = None  # the unspliced model's per-document losses: computed by the first scored run, reused after
    for seed in (int(s) for s in args.seeds.split(",")):  # seed-major: every cell gets seed 0 first
        for name in dict.fromkeys(names):
            path = out / "cells" / name / f"s{seed}.json"
            if path.is_file():
                continue
            load0, t0 = os.getloadavg(), time.perf_counter()
            cfg, train_s = train(store, runs / name / f"s{seed}", cells[name][1] + args.overrides, seed)
            res = score(runs / name / f"s{seed}", store, real, lm, args, base)
            base = res["delta_lm"]["per_doc"]["base"], res["delta_lm"]["per_doc"]["n"]
            write_json(path, with_placeholders({"cell": name, "factor": cells[name][0], "overrides": cells[name][1] + args.overrides,
                              "seed": seed,
                              "base": BASE, "config": cfg, **res, "train_seconds_this_call": round(train_s, 1),
                              "seconds": round(time.perf_counter() - t0, 1), "threads": torch.get_num_threads(),
                              "loadavg_start": list(load0), "loadavg_end": list(os.getloadavg()),
                              "command": " ".join(["python", "experiments/glp_ablation.py", *sys.argv[1:]])},
                                            {store: "STORE", args.store: "STORE", str(runs): "RUNS",
                                             **({args.out: "OUT"} if Path(args.out).is_absolute() else {})}))
            print(f"{name} s{seed}: ΔLM1 {res['delta_lm']['delta_glp_1step']:.3f} ΔLM10 "
                  f"{res['delta_lm']['delta_glp_10step']:.3f} acc {res['acc_100step']:.3f} "
                  f"({time.perf_counter() - t0:.0f} s, load {os.getloadavg()[0]:.2f})", flush=True)


def _arrays(rows: list[dict], metric: str):
    """(num, den) of shape (seeds, units) for one metric of one cell's seed rows."""
    import numpy as np

    if metric == "acc_100step":
        num = np.array([[c == "1" for c in r["acc_correct"]] for r in rows], dtype=np.float64)
        return num, np.ones_like(num)
    cond = metric.removeprefix("delta_")
    n = np.array([r["delta_lm"]["per_doc"]["n"] for r in rows])
    return np.array([r["delta_lm"]["per_doc"][cond] for r in rows]) - np.array(
        [r["delta_lm"]["per_doc"]["base"] for r in rows]), n


def summarize(out: Path, n_boot: int = 2000) -> dict:
    """Per cell and metric: mean over seeds, 95% two-level bootstrap CI (seeds, then documents / test rows),
    and the difference from the base cell with its CI. The difference is paired: every cell draws the same
    resampled seed indices (seed k of every cell shares the batch order and noise, and the initialisation when
    the shape is the same: a common-random-numbers design) and the same resampled documents; classifier test rows
    are each run's own."""
    import numpy as np

    from lmlab.glp.stats import percentile_ci, seed_unit_ratio, seed_unit_resamples
    from lmlab.io import read_json, write_json

    cells = {p.name: [read_json(f) for f in sorted(p.glob("s*.json"))] for p in sorted((out / "cells").iterdir())}
    cells = {k: v for k, v in cells.items() if v}
    boots, result = {}, {"cells": {}, "n_boot": n_boot, "base": BASE}
    for name, rows in cells.items():
        entry = {"factor": rows[0]["factor"], "overrides": rows[0]["overrides"], "seeds": [r["seed"] for r in rows],
                 "params": rows[0]["params"], "train_seconds": [r["train_seconds_this_call"] for r in rows],
                 "heldout_loss": [r["heldout_loss"] for r in rows],
                 "loadavg_max": max(max(r["loadavg_start"][0], r["loadavg_end"][0]) for r in rows)}
        for m in METRICS:
            num, den = _arrays(rows, m)
            paired = m != "acc_100step"
            s, u = seed_unit_resamples(len(rows), num.shape[1], n_boot, seed=1, paired_units=paired)
            boots[name, m] = seed_unit_ratio(num, den, s, u)
            per_seed = (num.sum(1) / den.sum(1)).tolist()
            entry[m] = {"mean": float(np.mean(per_seed)), "ci95": percentile_ci(boots[name, m]), "per_seed": per_seed}
        result["cells"][name] = entry
    if "base" in cells:
        for name, entry in result["cells"].items():
            for m in METRICS:
                if name != "base":
                    ci = percentile_ci(boots[name, m] - boots["base", m])
                    entry[m]["minus_base"] = {"mean": entry[m]["mean"] - result["cells"]["base"][m]["mean"],
                                              "ci95": ci, "excludes_0": not ci[0] <= 0 <= ci[1]}
    result["contrasts"] = {f"{a} - {b}": {m: {"mean": result["cells"][a][m]["mean"] - result["cells"][b][m]["mean"],
                                             "ci95": percentile_ci(boots[a, m] - boots[b, m])} for m in METRICS}
                           for a, b in CONTRASTS if a in cells and b in cells}
    write_json(out / "ablation.json", result)
    plot(result, out / "ablation.png")
    (out / "ablation.md").write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    """The docs table: per cell, seeds, each metric's mean [95% CI] and its difference from base [95% CI]
    (bold where the difference's CI excludes 0)."""
    f = lambda v: f"{v:.3f}"  # noqa: E731
    head = ("| cell | factor | seeds | ΔLM 1-step | − base | ΔLM 10-step | − base | classifier acc. 100-step | − base |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for name, e in result["cells"].items():
        cols = [name, e["factor"], str(len(e["seeds"]))]
        for m in METRICS:
            cols.append(f"{f(e[m]['mean'])} [{f(e[m]['ci95'][0])}, {f(e[m]['ci95'][1])}]")
            d = e[m].get("minus_base")
            txt = "" if d is None else f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]"
            cols.append(f"**{txt}**" if d and d["excludes_0"] else txt)
        lines.append("| " + " | ".join(cols) + " |")
    return head + "\n".join(lines) + "\n"


def plot(result: dict, png: Path) -> None:
    """One panel per metric: each cell's mean with its 95% CI; the base cell's mean as a dashed line."""
    import numpy as np

    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    names = list(result["cells"])
    fig, axes = plt.subplots(1, 3, figsize=(14, 0.35 * len(names) + 1.8), dpi=110, sharey=True)
    titles = {"delta_glp_1step": "ΔLM, 1 step (nats)", "delta_glp_10step": "ΔLM, 10 steps (nats)",
              "acc_100step": "classifier accuracy, 100-step samples"}
    for ax, m in zip(axes, METRICS):
        mean = np.array([result["cells"][c][m]["mean"] for c in names])
        lo, hi = np.array([result["cells"][c][m]["ci95"] for c in names]).T
        ax.errorbar(mean, range(len(names)), xerr=[mean - lo, hi - mean], fmt="o", ms=4, capsize=2)
        if "base" in result["cells"]:
            ax.axvline(result["cells"]["base"][m]["mean"], color="k", lw=0.8, ls="--")
        ax.set(title=titles[m], yticks=range(len(names)), yticklabels=names)
        ax.grid(alpha=0.3)
    axes[0].invert_yaxis()
    fig.suptitle("GLP recipe ablation: one factor at a time, 95% CI over seeds and documents / test rows")
    fig.tight_layout()
    save_png(fig, png)


def main(argv=None) -> int:
    args = parse_args(argv)
    if not args.summarize:
        if not args.store:
            raise SystemExit("error: --store is required unless --summarize")
        run_cells(args)
    res = summarize(Path(args.out))
    for name, e in res["cells"].items():
        print(name, "  ".join(f"{m} {e[m]['mean']:.3f} [{e[m]['ci95'][0]:.3f}, {e[m]['ci95'][1]:.3f}]" for m in METRICS))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

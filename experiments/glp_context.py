"""Issue 19 part 3: does a sequence-aware prior beat the single-token GLP at the same compute?

Given a trained single-token GLP run (the best recipe of the ablation), train a context prior (net.context = K:
the denoiser also attends to the previous K clean activations of the same document, glp/net.py) with the SAME
recipe and store, its steps set so that its training compute (C = 3 x forward FLOPs x activations, = 6 N D for
the single-token prior) matches the reference run's; then score both on the same material:
  * ΔLM (GLP §3): 1-step (x0) and 10-step reconstructions from σ_s = 0.4742 spliced into SmolLM2 at every
    non-BOS position of `--delta-docs` val documents; the context prior conditions on the real, unspliced
    preceding activations of each document; paired per-document bootstrap CIs for each ΔLM and for the
    difference (context − single);
  * classifier two-sample accuracy of `--n` samples (100 Euler steps) vs the real held-out rows at the same
    positions (the context prior samples each position given its real context; the single-token prior samples
    unconditionally), Wilson CIs;
  * held-out diffusion loss on the same held-out rows and noise (the trainer's set).
Writes OUT/context.json and OUT/context.png; the training run resumes (RUNS/context_k<K>).

Run: python experiments/glp_context.py --single RUN --runs RUNS --out OUT [--k 16] [--match compute|steps]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--single", required=True, help="the single-token GLP run to match (its config and store)")
    p.add_argument("--runs", required=True, help="where the context run is trained (RUNS/context_k<K>)")
    p.add_argument("--out", required=True)
    p.add_argument("--k", type=int, default=16, help="context length K")
    p.add_argument("--match", choices=("compute", "steps"), default="compute",
                   help="compute: the context run's steps give the single run's training FLOPs (the issue's "
                        "comparison); steps: the same steps and activations (more FLOPs: what context buys per step)")
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--delta-docs", type=int, default=120)
    p.add_argument("--sigma-start", type=float, default=0.4742)
    return p.parse_args(argv)


def matched_config(single: dict, k: int, match: str = "compute"):
    """The single run's config with net.context = k and max_steps giving the same training compute (match
    "compute") or the same steps (match "steps")."""
    from lmlab.config import from_dict
    from lmlab.glp.net import DenoiserConfig, forward_flops
    from lmlab.glp.train import GLPTrainConfig

    ref = from_dict(GLPTrainConfig, single)
    ctx_net = DenoiserConfig(**{**single["net"], "context": k})
    steps = round(ref.max_steps * forward_flops(ref.net) / forward_flops(ctx_net)) if match == "compute" \
        else ref.max_steps
    cfg = from_dict(GLPTrainConfig, {**single, "net": {**single["net"], "context": k}, "max_steps": steps,
                                     "runs_csv": None})
    return cfg, {"single_steps": ref.max_steps, "context_steps": steps,
                 "single_flops_per_act": 3 * forward_flops(ref.net), "context_flops_per_act": 3 * forward_flops(ctx_net)}


def score(glp, store, args, lm, base=None) -> dict:
    """ΔLM (per document) and the 100-step classifier test at the held-out rows heldout_real uses."""
    import numpy as np

    from lmlab.acts.store import split_rows
    from lmlab.glp.evaluate import classifier_correct, delta_lm, generate, generate_in_context, heldout_rows
    from lmlab.stats import wilson_ci

    dlm = delta_lm(glp, store.path, n_docs=args.delta_docs, sigma_start=args.sigma_start,
                   conds=("glp_1step", "glp_10step"), per_doc=True, lm=lm, base=base)
    rows = heldout_rows(split_rows(store)[1], args.n, 0)
    if glp.net.cfg.context:
        x, real = generate_in_context(glp, store, rows, 100, seed=0)
    else:
        x, real = generate(glp, len(rows), 100, seed=0), store.get(rows)
    correct = classifier_correct(real, x, seed=0)
    acc = float(correct.float().mean())
    return {"delta_lm": dlm, "acc_100step": acc, "acc_ci95": wilson_ci(acc, len(correct)),
            "n_test": len(correct), "n_rows": int(len(np.unique(rows)))}


def paired_diff(a: dict, b: dict, cond: str, n_boot: int = 4000) -> dict:
    """ΔLM(a) − ΔLM(b) for one condition, 95% bootstrap over the same documents (acts.splice.paired_delta_ci)."""
    import numpy as np

    from lmlab.acts.splice import paired_delta_ci

    n = np.asarray(a["per_doc"]["n"], float)
    da, db = np.asarray(a["per_doc"][cond], float), np.asarray(b["per_doc"][cond], float)
    return {"mean": float((da.sum() - db.sum()) / n.sum()), "ci95": paired_delta_ci(da, n, db, n_boot=n_boot)}


def main(argv=None) -> int:
    import torch

    from lmlab.acts.store import ActivationStore
    from lmlab.glp.load import load_glp
    from lmlab.glp.train import train_glp
    from lmlab.io import read_json, with_placeholders, write_json
    from lmlab.models import load_causal_lm
    from lmlab.runs import checkpoint

    args = parse_args(argv)
    single = read_json(Path(args.single) / "config.json")
    cfg, budget = matched_config(single, args.k, args.match)
    run = Path(args.runs) / f"context_k{args.k}" if args.match == "compute" else \
        Path(args.runs) / f"context_k{args.k}_same_steps"
    load0, t0 = os.getloadavg(), time.perf_counter()
    if not (run / "summary.json").is_file():
        train_glp(cfg, run, resume=checkpoint.latest(run) is not None, progress=False)
    train_s = time.perf_counter() - t0
    store = ActivationStore.open(single["store"])
    lm = load_causal_lm(store.model)
    res = {"single": score(load_glp(args.single), store, args, lm)}
    per = res["single"]["delta_lm"]["per_doc"]
    res["context"] = score(load_glp(run), store, args, lm, base=(per["base"], per["n"]))
    for name, r in (("single", args.single), ("context", run)):
        res[name]["heldout_loss"] = read_json(Path(r) / "summary.json")["final_eval"]["heldout_loss"]
    res["context_minus_single"] = {c: paired_diff(res["context"]["delta_lm"], res["single"]["delta_lm"], c)
                                   for c in ("glp_1step", "glp_10step")}
    out = {**res, "k": args.k, "match": args.match, "budget": budget, "context_config": asdict(cfg),
           "train_seconds_this_call": round(train_s, 1), "seconds": round(time.perf_counter() - t0, 1),
           "threads": torch.get_num_threads(), "loadavg_start": list(load0), "loadavg_end": list(os.getloadavg()),
           "command": " ".join(["python", "experiments/glp_context.py", *sys.argv[1:]])}
    stem = "context" if args.match == "compute" else "context_same_steps"
    write_json(Path(args.out) / f"{stem}.json", with_placeholders(
        out, {single["store"]: "STORE", str(Path(args.runs)): "RUNS", str(Path(args.single)): "SINGLE"}))
    plot(out, Path(args.out) / f"{stem}.png")
    print(json.dumps({k: out[k] for k in ("budget", "context_minus_single")}, indent=1))
    return 0


def plot(res: dict, png: Path) -> None:
    """ΔLM (1 and 10 steps) and classifier accuracy of the two priors with 95% CIs."""
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), dpi=110)
    names = ["single", "context"]
    for ax, cond in zip(axes[:2], ("glp_1step", "glp_10step")):
        m = [res[n]["delta_lm"][f"delta_{cond}"] for n in names]
        lo, hi = zip(*(res[n]["delta_lm"]["ci95"][f"delta_{cond}"] for n in names))
        ax.bar(names, m, yerr=[[a - b for a, b in zip(m, lo)], [b - a for a, b in zip(m, hi)]], capsize=4)
        ax.set(title=f"ΔLM, {cond.removeprefix('glp_')} (nats)")
    m = [res[n]["acc_100step"] for n in names]
    lo, hi = zip(*(res[n]["acc_ci95"] for n in names))
    axes[2].bar(names, m, yerr=[[a - b for a, b in zip(m, lo)], [b - a for a, b in zip(m, hi)]], capsize=4)
    axes[2].set(title="classifier accuracy, 100 steps", ylim=(0.4, 1.0))
    fig.suptitle(f"single-token vs sequence-aware prior (K = {res['k']}) at matched training compute; 95% CIs")
    fig.tight_layout()
    save_png(fig, png)


if __name__ == "__main__":
    raise SystemExit(main())

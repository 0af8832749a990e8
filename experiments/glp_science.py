"""Issue 4's science result: GLP on SmolLM2-135M layer 15 (docs/results.md, "GLP: scaling, sample quality and ΔLM").

  1. scaling: `lmlab.glp.sweep.sweep` trains the depth family on one store (one pass over the training rows, no
     activation seen twice), every log-spaced checkpoint's held-out loss is a runs.csv row, and
     L(C) = E + A C^-alpha is fitted with bootstrap CIs and R^2 (OUT/scaling_fit.json, .png);
  2. sample quality of the deepest GLP: FD (z-scored, with bootstrap CI) and classifier two-sample accuracy
     (Wilson CI) of samples with 1/4/20/100 Euler steps vs the train-vs-held-out floor and the Gaussian
     baseline, against real rows from the held-out documents (OUT/eval.json);
  3. ΔLM: splice GLP reconstructions (noise to sigma_s = 0.4742, the paper's setting, then 10 Euler steps or one
     x0 estimate) into SmolLM2 at layer 15 for every non-BOS position of held-out corpus documents, vs the
     Gaussian-prior reconstruction and mean ablation, with paired document-bootstrap CIs (OUT/delta_lm.json);
  4. OUT/results.json (everything, with timings) and OUT/glp_quality.png.
Every step resumes: rerunning the command skips what is done and continues an interrupted training run.

Run: python experiments/glp_science.py --store STORE --out OUT [--depths 1,2,3 --steps 900]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True, help="SmolLM2 layer-15 store (lmlab acts harvest), >= 1M rows")
    p.add_argument("--out", required=True)
    p.add_argument("--depths", default="1,2,3")
    p.add_argument("--steps", type=int, default=900, help="optimizer steps per depth (batch 1024)")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="extra GLP config overrides")
    p.add_argument("--n", type=int, default=4000, help="samples / real rows for FD and the classifier")
    p.add_argument("--sample-steps", default="1,4,20,100")
    p.add_argument("--delta-docs", type=int, default=200)
    p.add_argument("--sigma-start", type=float, default=0.4742)
    return p.parse_args(argv)


def _cached(path: Path, fn):
    from lmlab.io import read_json, write_json

    if path.is_file():
        return read_json(path)
    t = time.perf_counter()
    result = fn()
    result["seconds"] = round(time.perf_counter() - t, 1)
    write_json(path, result)
    return result


def plot_quality(ev: dict, dlm: dict, png: Path) -> None:
    """Left: classifier accuracy (95% CI) per set; right: ΔLM (95% CI) per replacement."""
    import numpy as np

    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4), dpi=110)
    sets = [k for k, v in ev.items() if isinstance(v, dict) and "acc" in v]
    acc = np.array([ev[k]["acc"] for k in sets])
    lo, hi = np.array([ev[k]["acc_ci95"] for k in sets]).T
    a.barh(sets, acc, xerr=[acc - lo, hi - acc], color="tab:blue", alpha=0.8)
    a.axvline(0.5, color="k", lw=0.8, ls=":")
    a.set(xlabel="classifier accuracy vs held-out real (0.5 = indistinguishable)", xlim=(0.4, 1.0),
          title="two-sample test (95% Wilson CI)")
    conds = [k for k in dlm if k.startswith("delta_") and k in dlm["ci95"]]
    d = np.array([dlm[k] for k in conds])
    dlo, dhi = np.array([dlm["ci95"][k] for k in conds]).T
    b.barh([c.removeprefix("delta_") for c in conds], d, xerr=[d - dlo, dhi - d], color="tab:orange", alpha=0.8)
    b.set(xscale="log", xlabel="ΔLM loss (nats), log scale", title=f"ΔLM, {dlm['n_docs']} held-out docs (95% CI)")
    fig.tight_layout()
    save_png(fig, png)


def main(argv=None) -> int:
    from lmlab.glp.evaluate import delta_lm, evaluate
    from lmlab.glp.load import load_glp
    from lmlab.glp.sweep import sweep
    from lmlab.io import write_json

    args = parse_args(argv)
    out = Path(args.out)
    depths = [int(d) for d in args.depths.split(",")]
    t = time.perf_counter()
    fit = sweep(args.store, out, depths, "smollm2-d3", [f"max_steps={args.steps}", "ckpt_every=100",
                                                           *args.overrides], progress=True)
    sweep_s = time.perf_counter() - t
    best = out / f"d{max(depths)}"
    steps = tuple(int(s) for s in args.sample_steps.split(","))
    ev = _cached(out / "eval.json", lambda: evaluate(best, args.store, n=args.n, steps=steps))
    dlm = _cached(out / "delta_lm.json", lambda: delta_lm(load_glp(best), args.store, n_docs=args.delta_docs,
                                                          sigma_start=args.sigma_start))
    plot_quality(ev, dlm, out / "glp_quality.png")
    write_json(out / "results.json", {"command": " ".join(["python", *sys.argv]), "store": args.store,
                                      "depths": depths, "steps": args.steps, "scaling_fit": fit,
                                      "sweep_seconds_this_call": round(sweep_s, 1), "eval": ev, "delta_lm": dlm})
    print(f"fit: {fit['params']} R2={fit['r2']:.3f}; acc: " +
          ", ".join(f"{k}={v['acc']:.3f}" for k, v in ev.items() if isinstance(v, dict)) +
          f"; ΔLM 10-step {dlm['delta_glp_10step']:.3f}, 1-step {dlm['delta_glp_1step']:.3f}, "
          f"Gaussian {dlm['delta_gaussian_prior']:.3f}, mean-ablation {dlm['delta_mean_ablation']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

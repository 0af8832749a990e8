"""Issue 19 part 1, full size: the loss spike of the full-width GLP and AdamW's second-moment decay β2.

At full width (`smollm2-d3`: d_model 1152, 35.9M params) with logit-normal σ and lr 1e-3 on the 1M-row SmolLM2
layer-15 store, training jumps at step ~150 (train loss 1.3 -> 2.2) after batches that hold position-1 rows (the
token after BOS) with z-scored norms 8-12. With β2 = 0.999 (torch's default, the paper's) Adam's second moment
averages ~1000 steps of small gradients, so when outlier batches raise the gradient the normaliser lags and the
update m/√v grows several-fold; β2 = 0.95 (the usual LLM-training cure) tracks the gradient scale within ~20
steps.

This script trains the same config (same seed, batches and noise) with each β2 for --stop steps of the
--max-steps schedule (the warm-up and cosine of the full run), stops it there, and writes OUT/beta2_spike.json
(per logged step: train loss, pre-clip gradient norm; the trainer's held-out evaluations) and OUT/beta2_spike.png.
One seed: a diagnostic of a training pathology, not a ranking.

    python experiments/glp_beta2_spike.py --store STORE --runs RUNS --out OUT [--stop 250] [--analyse-only]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RECIPE = ["--preset", "smollm2-d3", "--set", 'sigma="logit_normal"', "--set", "lr=0.001"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True)
    p.add_argument("--runs", required=True, help="training runs go to RUNS/beta2_<b>")
    p.add_argument("--out", required=True)
    p.add_argument("--betas", default="0.999,0.95")
    p.add_argument("--max-steps", type=int, default=3711, help="the schedule's length (4 passes over 950k rows)")
    p.add_argument("--stop", type=int, default=250, help="stop each run after this many steps")
    p.add_argument("--analyse-only", action="store_true", help="skip training; read RUNS/beta2_<b>/metrics.jsonl")
    return p.parse_args(argv)


def last_step(metrics: Path) -> int:
    try:
        return json.loads(metrics.read_text().strip().splitlines()[-1])["step"]
    except (OSError, IndexError, ValueError, KeyError):
        return 0


def train_until(store: str, run: Path, beta2: float, max_steps: int, stop: int) -> float:
    """`lmlab glp train` of the recipe with adam_beta2 = beta2, terminated once step `stop` is logged; seconds."""
    if last_step(run / "metrics.jsonl") >= stop:
        return 0.0
    cmd = ["lmlab", "glp", "train", "--store", store, "--out", str(run), *RECIPE, "--set", f"max_steps={max_steps}",
           "--set", f"adam_beta2={beta2}"] + (["--resume"] if (run / "ckpt").is_dir() else [])
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    while proc.poll() is None and last_step(run / "metrics.jsonl") < stop:
        time.sleep(2)
    proc.terminate()
    proc.wait()
    if last_step(run / "metrics.jsonl") < stop:
        sys.exit(f"error: the run {run} ended at step {last_step(run / 'metrics.jsonl')} before step {stop} "
                 f"(exit code {proc.returncode}); see its metrics.jsonl, then rerun (it resumes)")
    return time.perf_counter() - t0


def series(metrics: Path, stop: int) -> dict:
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    train = [r for r in rows if "loss" in r and r["step"] <= stop]
    evals = [r["eval"] for r in rows if "eval" in r and r["step"] <= stop]
    return {"step": [r["step"] for r in train], "loss": [r["loss"] for r in train],
            "grad_norm": [r["grad_norm"] for r in train],
            "eval_step": [e["step"] for e in evals], "heldout_loss": [e["heldout_loss"] for e in evals],
            "max_grad_norm": max(r["grad_norm"] for r in train), "max_train_loss_after_100":
            max((r["loss"] for r in train if r["step"] > 100), default=None),
            "last_heldout": evals[-1]["heldout_loss"] if evals else None, "last_eval_step": evals[-1]["step"]}


def plot(res: dict, png: Path) -> None:
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for beta2, s in res["runs"].items():
        a.plot(s["step"], s["loss"], label=f"β2 = {beta2}: train")
        a.plot(s["eval_step"], s["heldout_loss"], "o--", ms=3, label=f"β2 = {beta2}: held-out")
        b.plot(s["step"], s["grad_norm"], label=f"β2 = {beta2}")
    a.set(xlabel="step", ylabel="flow-matching loss", title="full-width GLP, lr 1e-3, logit-normal σ")
    b.set(xlabel="step", ylabel="gradient norm before clipping (clip 1.0)", yscale="log")
    a.legend(fontsize=7), b.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, png)


def main(argv=None) -> int:
    from lmlab.io import read_json, with_placeholders, write_json

    args = parse_args(argv)
    out, runs = Path(args.out), Path(args.runs)
    out.mkdir(parents=True, exist_ok=True)
    prev = out / "beta2_spike.json"
    res = read_json(prev) if prev.is_file() else {}  # an --analyse-only rerun keeps the timings
    res = {"runs": {}, **{k: res.get(k, {}) for k in ("seconds", "train_loadavg", "train_note")}}
    for beta2 in args.betas.split(","):
        run = runs / f"beta2_{beta2}"
        if not args.analyse_only:
            load0 = os.getloadavg()
            res["seconds"][beta2] = train_until(args.store, run, float(beta2), args.max_steps, args.stop)
            res["train_loadavg"][beta2] = {"start": list(load0), "end": list(os.getloadavg())}
        res["runs"][beta2] = series(run / "metrics.jsonl", args.stop)
    res.update(command="python " + " ".join(sys.argv), recipe=RECIPE, max_steps=args.max_steps, stop=args.stop)
    write_json(out / "beta2_spike.json", with_placeholders(res, {args.store: "STORE", args.runs: "RUNS",
                                                                  args.out: "OUT"}))
    plot(res, out / "beta2_spike.png")
    for beta2, s in res["runs"].items():
        print(f"beta2 {beta2}: max grad norm {s['max_grad_norm']:.2f}, held-out loss at step {s['last_eval_step']} "
              f"{s['last_heldout']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

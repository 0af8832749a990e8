"""Forget-vs-retain frontier and ablations of token-level filtering at one model size (issue 16 §5–6):

    python experiments/filter_frontier.py --data DATA --work WORK --out docs/results/filtering/frontier \
        [--size 48x2] [--token-rates 0.03,0.1,0.25,0.5] [--doc-rates 0.1,0.25,0.5] [--noise 0.25,0.5] \
        [--masks target,union] [--main SWEEP] [--seeds SWEEP2]

DATA is a dataset labelled by `lmlab filter label` (train.side, train.docflags.npy). Every configuration is one
`lmlab filter sweep` (one size, one seed) in WORK/frontier/<name>, run as a subprocess of the real CLI and skipped
when finished, so the script resumes after kill -9 or on a new machine with WORK:

  baseline          no filtering
  mask_tNN          token loss masking (input-keyed) with the threshold that flags NN% of training tokens
  document_dNN      document filtering with the threshold that drops NN% of documents
  mask_target/union the classifier's own threshold, target- / union-keyed mask (ablation)
  mask_input        the classifier's own threshold, input-keyed (the reference of both ablations)
  noise_NN          mask_input with NN% of the flags moved to random tokens (label-noise ablation)

Then every final model is scored on the same held-out windows (filtering/evaluate.py) and its loss gap to the
baseline gets a paired bootstrap interval: OUT/frontier.json, OUT/frontier.png. With --main SWEEP (a finished
`lmlab filter sweep`), the same paired gaps for each of its sizes go to OUT/main_gaps.json. Wall time and load
average of every step are in OUT/steps.json; no path of this machine is written. With --seeds SWEEP2 (a sweep of
the same data at one size with further seeds), OUT/seed_gaps.json holds every seed's paired gaps at that size
(SWEEP2's and --main's) and, per series and domain, the mean gap over seeds with a Student-t 95% interval: the
paired window bootstrap measures evaluation noise only, the spread over seeds measures training noise.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np


def thresholds(data: Path, token_rates, doc_rates) -> tuple[dict, dict]:
    """{rate: (threshold, realised share)} for tokens (train.side) and documents (train.docflags.npy)."""
    from lmlab.data.shards import open_shard

    side = np.asarray(open_shard(data / "train.bin").side, dtype=np.float32)
    docs = np.load(data / "train.docflags.npy")
    tok = {r: float(np.quantile(side, 1 - r)) for r in token_rates}
    doc = {r: float(np.quantile(docs, 1 - r)) for r in doc_rates}
    return ({r: (t, float((side >= t).mean())) for r, t in tok.items()},
            {r: (t, float((docs >= t).mean())) for r, t in doc.items()})


def configs(a, tok: dict, doc: dict) -> dict[str, list[str]]:
    """name -> FilterSweepConfig overrides of one single-size sweep."""
    common = [f'sizes=["{a.size}"]', f"seeds=[{a.seed}]"]
    c = {"baseline": ['series=["baseline"]'], "mask_input": ['series=["mask"]']}
    c.update({f"mask_t{round(100 * r):02d}": ['series=["mask"]', f"threshold={t}"] for r, (t, _) in tok.items()})
    c.update({f"document_d{round(100 * r):02d}": ['series=["document"]', f"doc_threshold={t}"]
              for r, (t, _) in doc.items()})
    c.update({f"mask_{m}": ['series=["mask"]', f"mask={m}"] for m in a.masks})
    c.update({f"noise_{round(100 * r):02d}": ['series=["mask"]', f"label_noise={r}"] for r in a.noise})
    return {k: common + v for k, v in c.items()}


def run_sweeps(a, cfgs: dict, work: Path, log: dict, log_path: Path) -> dict[str, dict]:
    """Each configuration's single sweep row (the run's figures), training those not finished."""
    rows = {}
    for name, sets in cfgs.items():
        sw = work / "frontier" / name
        if not (sw / "sweep.json").is_file():
            load0, t0 = os.getloadavg(), time.perf_counter()
            cmd = ["filter", "sweep", "--data", str(a.data), "--out", str(sw), "--no-progress",
                   *[x for s in sets for x in ("--set", s)]]
            print(f"[{name}] lmlab {' '.join(cmd)}", flush=True)
            subprocess.run([sys.executable, "-m", "lmlab", *cmd], check=True)
            log[name] = {"seconds": round(time.perf_counter() - t0, 1), "loadavg_start": load0,
                         "loadavg_end": os.getloadavg(), "command": "lmlab filter sweep --data DATA --out "
                         f"WORK/frontier/{name} " + " ".join(f"--set '{s}'" for s in sets)}
            log_path.write_text(json.dumps(log, indent=1) + "\n")
        (row,) = json.loads((sw / "sweep.json").read_text())["runs"]
        rows[name] = {**row, "dir": sw / row["name"]}
    return rows


def main_gaps(sweep_dir: Path, data: Path, windows: int) -> dict:
    """Paired gaps of every filtered run of a multi-size sweep to the baseline of its size and seed."""
    from lmlab.filtering.evaluate import paired_gaps

    rows = json.loads((sweep_dir / "sweep.json").read_text())["runs"]
    out = {}
    for b in (r for r in rows if r["series"] == "baseline"):
        others = {r["series"]: sweep_dir / r["name"] for r in rows
                  if r["series"] != "baseline" and (r["size"], r["seed"]) == (b["size"], b["seed"])}
        g = paired_gaps(others, sweep_dir / b["name"], data, max_windows=windows)
        out[f"{b['size']}_s{b['seed']}"] = {**g, "c_nominal": b["c_nominal"]}
    return out


def seed_gaps(sweeps: list[Path], data: Path, windows: int) -> dict:
    """Paired gaps of each (size, seed) in SWEEPS plus, per size, series and domain, the mean over seeds with a
    Student-t 95% interval (training-seed noise, which the window bootstrap of one seed cannot see)."""
    from scipy import stats

    size = {r["size"] for r in json.loads((sweeps[-1] / "sweep.json").read_text())["runs"]}
    per = {k: v for sw in sweeps for k, v in main_gaps(sw, data, windows).items() if k.split("_s")[0] in size}
    summary: dict = {}
    for key, g in per.items():
        for series, doms in g["runs"].items():
            for dom, v in doms.items():
                summary.setdefault(key.split("_s")[0], {}).setdefault(series, {}).setdefault(dom, []).append(v["gap"])
    for sz in summary.values():
        for doms in sz.values():
            for dom, gaps in doms.items():
                x = np.asarray(gaps)
                half = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None
                doms[dom] = {"gaps": gaps, "mean": float(x.mean()), "sd": float(x.std(ddof=1)) if len(x) > 1 else None,
                             "ci95": None if half is None else [float(x.mean()) - half, float(x.mean()) + half]}
    return {"per_seed": per, "over_seeds": summary, "n_seeds": len(per)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--size", default="48x2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--token-rates", default="0.03,0.1,0.25,0.5")
    ap.add_argument("--doc-rates", default="0.1,0.25,0.5")
    ap.add_argument("--noise", default="0.25,0.5")
    ap.add_argument("--masks", default="target,union")
    ap.add_argument("--windows", type=int, default=400, help="held-out windows per domain for the paired gaps")
    ap.add_argument("--main", type=Path, default=None, help="a finished multi-size filter sweep")
    ap.add_argument("--seeds", type=Path, default=None, help="a finished sweep with further seeds at one size")
    a = ap.parse_args(argv)
    floats = lambda s: [float(x) for x in s.split(",") if x]  # noqa: E731
    a.noise, a.masks = floats(a.noise), [m for m in a.masks.split(",") if m]
    a.out.mkdir(parents=True, exist_ok=True)
    log_path = a.out / "steps.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    tok, doc = thresholds(a.data, floats(a.token_rates), floats(a.doc_rates))
    rows = run_sweeps(a, configs(a, tok, doc), a.work, log, log_path)
    from lmlab.filtering.evaluate import frontier_plot, paired_gaps
    from lmlab.io import write_json

    g = paired_gaps({n: r["dir"] for n, r in rows.items() if n != "baseline"}, rows["baseline"]["dir"], a.data,
                    max_windows=a.windows)
    for n, r in rows.items():
        if n != "baseline":
            g["runs"][n].update({k: r[k] for k in ("series", "threshold", "masked_share", "steps", "c_nominal",
                                                   "c_processed", "loss_bearing_tokens")})
    g["token_rates"] = {f"{r:g}": {"threshold": t, "flagged_share": s} for r, (t, s) in tok.items()}
    g["doc_rates"] = {f"{r:g}": {"threshold": t, "dropped_doc_share": s} for r, (t, s) in doc.items()}
    g.update(size=a.size, seed=a.seed, command="python experiments/filter_frontier.py --data DATA --work WORK "
             f"--out OUT --size {a.size}")
    write_json(a.out / "frontier.json", g)
    labels = {f"mask_t{round(100 * r):02d}": {"series": "token mask", "text": f"{100 * s:.0f}% tok"}
              for r, (_, s) in tok.items()}
    labels.update({f"document_d{round(100 * r):02d}": {"series": "document", "text": f"{100 * s:.0f}% docs"}
                   for r, (_, s) in doc.items()})
    frontier_plot(g, labels, a.out / "frontier.png")
    if a.main is not None:
        write_json(a.out / "main_gaps.json", main_gaps(a.main, a.data, a.windows))
    if a.seeds is not None:
        sweeps = [a.main, a.seeds] if a.main is not None else [a.seeds]
        write_json(a.out / "seed_gaps.json", seed_gaps(sweeps, a.data, a.windows))
    print(json.dumps({"out": "OUT", "runs": len(rows)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

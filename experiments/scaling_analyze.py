"""Science result for docs/results.md "Scaling laws": GPT-4-style extrapolation and the Chinchilla fit on the
lmlab sweeps (experiments/scaling_sweep.sh on CPU, experiments/scaling_sweep_gpu.sh on one GPU).

1. gpt4-c (L = E + A C^-alpha) fitted on the final losses of the runs whose compute is <= X only (no partial
   results of larger runs), predicting the final loss of every larger run with a 95% bootstrap interval
   (bootstrap over runs); error vs the actual run.
2. chinchilla (E + A/N^alpha + B/D^beta, N = all parameters, D = tokens) on the full grid of (N, D) rows:
   every evaluated checkpoint of every run from 25% of its horizon on (earlier checkpoints dropped, Choshen et al.
   2025), bootstrap over runs; compute-optimal tokens/param (closed form under C = 6ND) with intervals.

Usage: .venv/bin/python experiments/scaling_analyze.py [--out docs/results/scaling] [--n-boot 200]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lmlab.io import write_json
from lmlab.scaling.fit import fit
from lmlab.scaling.plots import fit_plot, isoloss_plot, residual_plot
from lmlab.scaling.predict import allocation, predict_extrapolation
from lmlab.scaling.table import Columns, load_columns, read_table, select_rows


def finals(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = select_rows(read_table(path), final_only=True)
    cols = load_columns(path, Columns(), ("C",), rows)
    return cols["C"], cols["loss"], np.array([r["run"] for r in rows])


def extrapolate(path: Path, fit_max: float, out: Path, tag: str, n_boot: int) -> dict:
    c, loss, runs = finals(path)
    targets = c[c > fit_max]
    actual = {float(t): float(v) for t, v in zip(targets, loss[c > fit_max])}
    sel = c <= fit_max
    r = predict_extrapolation(c, loss, fit_max, targets, "gpt4-c", bootstrap=n_boot, seed=0, groups=runs,
                              actual=actual)
    res = r.pop("_fit")
    fit_plot(res, c[sel], loss[sel], out / f"predict_{tag}.png", "C",
             {"actual final loss (held out)": (targets, loss[c > fit_max])},
             title=f"{tag}: gpt4-c fit on runs with C <= {fit_max:.2g} FLOPs, extrapolated")
    for p, name in zip(r["predictions"], runs[c > fit_max]):
        p["run"] = str(name)
    r["fit_runs"] = [str(x) for x in runs[sel]]
    return r


def chinchilla_grid(path: Path, out: Path, tag: str, n_boot: int) -> dict:
    rows = select_rows(read_table(path), min_frac=0.25)
    cols = load_columns(path, Columns(n="N_total", c="C_6ND"), ("N", "D"), rows)
    groups = np.array([r["run"] for r in rows])
    res = fit("chinchilla", N=cols["N"], D=cols["D"], loss=cols["loss"], starts=200, bootstrap=n_boot, seed=0,
              groups=groups)
    isoloss_plot(res, cols["N"], cols["D"], cols["loss"], out / f"chinchilla_{tag}.png",
                 title=f"{tag}: chinchilla fit (N = all params), iso-loss contours")
    residual_plot(res, cols, out / f"chinchilla_{tag}_residuals.png")
    c_max = float((6 * cols["N"] * cols["D"]).max())
    return {"fit": res.to_json(), "n_rows": len(rows), "n_runs": len(set(groups)),
            "allocation": allocation(res, [c_max / 10, c_max, 10 * c_max])}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/results/scaling")
    ap.add_argument("--n-boot", type=int, default=200)
    args = ap.parse_args()
    out = Path(args.out)
    cpu, gpu = out / "runs_cpu.csv", out / "runs_gpu.csv"
    result = {
        "cpu_sweep": {"runs_csv": str(cpu), "extrapolation": extrapolate(cpu, 8e10, out, "cpu", args.n_boot),
                      "chinchilla": chinchilla_grid(cpu, out, "cpu", args.n_boot)},
        "gpu_sweep": {"runs_csv": str(gpu), "extrapolation": extrapolate(gpu, 2.2e12, out, "gpu", args.n_boot),
                      "chinchilla": chinchilla_grid(gpu, out, "gpu", args.n_boot)},
    }
    write_json(out / "scaling_results.json", result)
    for k, v in result.items():
        for p in v["extrapolation"]["predictions"]:
            ci = f"[{p['ci'][0]:.4f}, {p['ci'][1]:.4f}]" if p["ci"] else "(no interval)"
            print(f"{k} {p['run']}: x{p['compute_ratio']:.1f} predicted {p['predicted']:.4f} {ci} "
                  f"actual {p['actual']:.4f} error {100 * p['rel_error']:+.2f}%")
        a = v["chinchilla"]["allocation"][1]
        print(f"{k} chinchilla {v['chinchilla']['fit']['params']} tokens/param at C={a['C']:.3g}: "
              f"{a['tokens_per_param']:.2f} {a.get('tokens_per_param_ci')}")


if __name__ == "__main__":
    main()

"""SAEs at several widths on one store: train (resumable: finished runs are reused), evaluate (L0, FVU, dead,
ΔCE / CE recovered / KL score with document CIs), label medical tokens with the middle width; one JSON row per
width as it lands, a table JSON and a plot.

    python experiments/sae_widths.py --store STORE --runs RUNS --out OUT [--expansions 4,8,16] [--steps 600]
                                     [--no-labels]

RUNS holds the SAE run directories (weights: keep them out of git); OUT gets the JSON rows, the plot and labels.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--runs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--expansions", default="4,8,16")
    ap.add_argument("--k", type=int, default=32)
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--dtype", default="bf16")
    ap.add_argument("--n-docs", type=int, default=100)
    ap.add_argument("--label-docs", type=int, default=100)
    ap.add_argument("--no-labels", action="store_true", help="skip the labelling (e.g. a longer-budget re-run)")
    args = ap.parse_args(argv)
    from lmlab.config import apply_overrides, get_preset
    from lmlab.io import read_json, write_json
    from lmlab.sae import train as T
    from lmlab.sae.evaluate import evaluate_sae

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for e in [float(x) for x in args.expansions.split(",")]:
        run, row_file = Path(args.runs) / f"x{e:g}", out / f"x{e:g}.json"
        if row_file.is_file():
            rows.append(read_json(row_file))
            continue
        load0, t0 = os.getloadavg(), time.perf_counter()
        cfg = apply_overrides(get_preset("sae", "smollm2-l15"), [f"store={json.dumps(args.store)}", f"expansion={e}",
                                                                  f"k={args.k}", f"max_steps={args.steps}",
                                                                  f"dtype={args.dtype}", "dead_tokens=2000000"])
        if not (run / "summary.json").is_file():
            T.train_sae(cfg, run, resume=(run / "ckpt").exists(), progress=False)
        train_s = time.perf_counter() - t0
        ev = evaluate_sae(run, args.store, n_rows=20_000, n_docs=args.n_docs, seq_len=128)
        ev.pop("density_hist")
        row = {"expansion": e, "n_latents": ev["n_latents"], "k": ev["k"], "steps": args.steps,
               "vectors": args.steps * cfg.batch_size, "train_seconds": round(train_s, 1), **ev,
               "sae": f"RUNS/x{e:g}", "store": "STORE", "loadavg_start": load0, "loadavg_end": os.getloadavg()}
        write_json(row_file, row)
        rows.append(row)
        print(f"x{e:g}: FVU {ev['fvu']:.3f} dead {ev['dead_frac']:.3f} dCE {ev['lm']['delta_ce']:.3f} "
              f"CE rec {ev['lm']['ce_recovered_zero']:.3f} KL score {ev['lm']['kl_score']:.3f}", flush=True)
    write_json(out / "widths.json", {"store": "STORE", "rows": rows})
    _plot(rows, out / "widths.png")
    mid = Path(args.runs) / f"x{float(args.expansions.split(',')[len(args.expansions.split(',')) // 2]):g}"
    from lmlab.sae.label import label_command

    # the labeller as shipped (format latents excluded by word share) and, for comparison, every latent a candidate
    for sub, share in () if args.no_labels else (("labels", 0.5), ("labels_all_latents", 0.0)):
        if not (out / sub / "labels.json").is_file():
            summary = label_command(mid, out / sub, "medical", args.store, n_docs=args.label_docs,
                                    min_word_share=share)
            summary.update(sae=f"RUNS/{mid.name}", store="STORE")  # committed results name no path of this machine
            write_json(out / sub / "labels.json", summary)
    return 0


def _plot(rows: list[dict], png: Path) -> None:
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    n = [r["n_latents"] for r in rows]
    axes[0].plot(n, [r["fvu"] for r in rows], "o-")
    axes[0].set(xscale="log", xlabel="latents", ylabel="held-out FVU", title="reconstruction")
    d = [r["lm"]["delta_ce"] for r in rows]
    lo = [r["lm"]["delta_ce"] - r["lm"]["ci95"]["delta_ce"][0] for r in rows]
    hi = [r["lm"]["ci95"]["delta_ce"][1] - r["lm"]["delta_ce"] for r in rows]
    axes[1].errorbar(n, d, yerr=[lo, hi], marker="o", capsize=3)
    axes[1].set(xscale="log", xlabel="latents", ylabel="ΔCE (nats, 95% CI over documents)", title="spliced into the LM")
    fig.tight_layout()
    save_png(fig, png)


if __name__ == "__main__":
    raise SystemExit(main())

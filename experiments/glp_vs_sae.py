"""The GLP paper's comparison (Luo et al. 2026, Tables 1–2) on one store: a GLP against SAEs trained on the same
activations, scored on the same held-out rows and the same held-out documents.

1. Distribution quality against held-out real rows (set A): the SAE's reconstructions of other held-out rows
   (set B) — the paper's "SAE reconstruction" row — vs GLP samples from noise (100 Euler steps, the paper's
   row) and, like for like, the GLP's own reconstructions of set B (noise to sigma_start, then 1 or 10 Euler
   steps), with two floors (training rows; set B itself) and a Gaussian beside them. FD on z-scored and raw activations, and the
   held-out accuracy of a classifier telling the set from real (Wilson 95% CI; 0.5 = indistinguishable).
2. ΔLM: the layer's residual at every stored position replaced by each reconstruction, on the first N documents
   of the corpus's val split (the documents `glp delta-lm` and `sae eval` use), paired 95% bootstrap over
   documents, and paired intervals of each GLP-minus-SAE difference.

    python experiments/glp_vs_sae.py --store STORE --glp GLP --saes RUNS/x4,RUNS/x8,RUNS/x16 --out OUT

Each part's JSON is written as it lands (OUT/quality.json, OUT/delta_lm.json) and reused on a re-run; then
OUT/compare.json and OUT/compare.png. Paths are recorded as STORE / GLP / RUNS placeholders.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch


def quality(store, glp, saes: dict, n: int, sigma: float, seed: int = 0) -> dict:
    from lmlab.acts.store import split_rows
    from lmlab.glp.evaluate import (
        classifier_accuracy,
        classifier_test_size,
        frechet_distance,
        gaussian_baseline,
        generate,
        recon_glp,
    )
    from lmlab.stats import wilson_ci

    train, held = split_rows(store)
    rng = np.random.default_rng([seed, 11])
    pick = rng.permutation(held)[: 2 * n]
    real, other = store.get(np.sort(pick[:n])).float(), store.get(np.sort(pick[n:])).float()

    def score(x: torch.Tensor) -> dict:
        with torch.no_grad():
            zx, zr = glp.encode(x), glp.encode(real)
        acc = classifier_accuracy(real, x, seed)
        return {"fd": frechet_distance(zx, zr), "fd_raw": frechet_distance(x, real), "acc": acc,
                "acc_ci95": wilson_ci(acc, classifier_test_size(min(len(real), len(x))))}

    # two floors: rows of the training documents (the reference for samples from the whole distribution) and set
    # B itself, rows of the same held-out documents as set A (the reference for reconstructions of set B)
    sets = {"floor: training rows": lambda: store.get(np.sort(rng.choice(train, n, replace=False))).float(),
            "floor: held-out rows (set B)": lambda: other,
            "Gaussian N(mu, Sigma)": lambda: gaussian_baseline(store.get(train[:50_000]).float(), n, seed),
            "GLP samples, 100 steps": lambda: generate(glp, n, 100, seed),
            "GLP reconstruction, 1 step": lambda: _batched(lambda h: recon_glp(glp, h, sigma, 1, seed), other),
            "GLP reconstruction, 10 steps": lambda: _batched(lambda h: recon_glp(glp, h, sigma, 10, seed), other)}
    for name, sae in saes.items():
        sets[f"SAE {name} reconstruction"] = lambda sae=sae: _batched(lambda h: sae.decode(sae.encode(h)), other)
    out = {"n_real": n, "sigma_start": sigma}
    for name, make in sets.items():
        t = time.perf_counter()
        with torch.no_grad():
            x = make()
        out[name] = {**score(x), "seconds": round(time.perf_counter() - t, 1)}
        print(f"{name}: FD(z) {out[name]['fd']:.1f} acc {out[name]['acc']:.3f}", flush=True)
    return out


def _batched(fn, x: torch.Tensor, batch: int = 4096) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([fn(x[i:i + batch]) for i in range(0, len(x), batch)])


def delta_lm(store, glp, saes: dict, n_docs: int, sigma: float, seq_len: int = 128, seed: int = 0) -> dict:
    from lmlab.acts.positions import encode_docs, store_prepend_bos
    from lmlab.acts.splice import paired_delta_ci, splice_losses
    from lmlab.data.corpus import iter_documents
    from lmlab.glp.evaluate import recon_glp
    from lmlab.models import load_causal_lm

    model, tok = load_causal_lm(store.model)
    docs = [d.text for _, d in zip(range(n_docs), iter_documents(store.meta["config"].get("corpus"), split="val"))]
    bos = store_prepend_bos(store)
    enc = [e for e in encode_docs(tok, docs, seq_len, bos) if len(e) > 1]
    mean = store.stats["mean"].float()
    conds = {"base": None, "GLP 1 step": lambda h: recon_glp(glp, h, sigma, 1, seed),
             "GLP 10 steps": lambda h: recon_glp(glp, h, sigma, 10, seed),
             **{f"SAE {k}": (lambda h, s=s: s.decode(s.encode(h.float())).to(h.dtype)) for k, s in saes.items()},
             "mean ablation": lambda h: mean.to(h.dtype).expand_as(h)}
    d = splice_losses(model, tok, enc, store.layer, conds, 8, bos)
    n, base = d["base"]["n"], d["base"]["ce"]
    out = {"n_docs": len(enc), "n_tokens": int(n.sum()), "base_loss": float(base.sum() / n.sum()), "delta": {},
           "ci95": {}, "glp_minus_sae": {}}
    for k in conds:
        if k != "base":
            out["delta"][k] = float((d[k]["ce"].sum() - base.sum()) / n.sum())
            out["ci95"][k] = paired_delta_ci(d[k]["ce"], n, base)
    for g in ("GLP 1 step", "GLP 10 steps"):
        for s in saes:
            diff = float((d[g]["ce"].sum() - d[f"SAE {s}"]["ce"].sum()) / n.sum())
            out["glp_minus_sae"][f"{g} - SAE {s}"] = {"delta": diff,
                                                      "ci95": paired_delta_ci(d[g]["ce"], n, d[f"SAE {s}"]["ce"])}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--store", required=True)
    ap.add_argument("--glp", required=True)
    ap.add_argument("--saes", required=True, help="comma-separated SAE run directories (or SAELens folders)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=4000, help="held-out rows per set (part 1)")
    ap.add_argument("--n-docs", type=int, default=200, help="held-out documents (part 2)")
    ap.add_argument("--sigma-start", type=float, default=0.4742, help="the paper's noise level for reconstruction")
    args = ap.parse_args(argv)
    from lmlab.acts.store import ActivationStore
    from lmlab.glp.load import load_glp
    from lmlab.io import read_json, write_json
    from lmlab.sae.saelens import load_sae

    torch.manual_seed(0)
    out, store, glp = Path(args.out), ActivationStore.open(args.store), load_glp(args.glp)
    saes = {Path(p).name: load_sae(p) for p in args.saes.split(",")}
    out.mkdir(parents=True, exist_ok=True)
    meta = {"store": "STORE", "glp": "GLP", "saes": {k: f"RUNS/{k}" for k in saes}, "sigma_start": args.sigma_start}
    parts = {}
    for name, fn in (("quality", lambda: quality(store, glp, saes, args.n, args.sigma_start)),
                     ("delta_lm", lambda: delta_lm(store, glp, saes, args.n_docs, args.sigma_start))):
        path = out / f"{name}.json"
        if not path.is_file():
            load0, t0 = os.getloadavg(), time.perf_counter()
            res = fn()
            write_json(path, {**meta, **res, "seconds": round(time.perf_counter() - t0, 1),
                              "loadavg_start": load0, "loadavg_end": os.getloadavg()})
        parts[name] = read_json(path)
    write_json(out / "compare.json", {**meta, **parts})
    _plot(parts, out / "compare.png")
    return 0


def _plot(parts: dict, png: Path) -> None:
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    q = {k: v for k, v in parts["quality"].items() if isinstance(v, dict) and "acc" in v}
    names = list(q)
    acc = np.array([q[k]["acc"] for k in names])
    ci = np.array([q[k]["acc_ci95"] for k in names])
    axes[0].barh(names, acc, xerr=[acc - ci[:, 0], ci[:, 1] - acc], capsize=3, color="#7a9")
    axes[0].axvline(0.5, color="k", lw=0.8, ls=":")
    axes[0].set(xlabel="classifier accuracy vs held-out real (95% CI)", xlim=(0.45, 1.0), title="distribution")
    dl = parts["delta_lm"]
    names = [k for k in dl["delta"] if k != "mean ablation"]
    d = np.array([dl["delta"][k] for k in names])
    ci = np.array([dl["ci95"][k] for k in names])
    axes[1].barh(names, d, xerr=[d - ci[:, 0], ci[:, 1] - d], capsize=3, color="#79b")
    axes[1].set(xlabel="ΔLM (nats, 95% CI over documents)", title=f"spliced into the LM ({dl['n_docs']} documents)")
    fig.tight_layout()
    save_png(fig, png)


if __name__ == "__main__":
    raise SystemExit(main())

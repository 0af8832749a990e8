"""SAE evaluation on a store's held-out documents (token_filtering_sae.md §4.3; definitions as SAELens and
dictionary_learning compute them):

    L0            mean active latents per token
    FVU           sum |x - x^|^2 / sum |x - mean(x)|^2 (explained variance = 1 - FVU)
    dead_frac     latents that fire on none of the held-out rows
    rel_bias      relative reconstruction bias E|x^|^2 / E<x, x^> (Gated SAE paper eq. 10; 1 = no shrinkage)
    density       per latent, the fraction of rows it fires on (histogram of log10 density: plot)
    ΔCE           CE with the SAE reconstruction spliced into the LM at its layer minus the clean CE
                  (acts/splice.py: the positions the store holds, held-out corpus documents)
    CE recovered  (CE_zero - CE_sae) / (CE_zero - CE_clean), zero ablation as the reference; mean ablation
                  reported beside it
    KL score      (KL_zero - KL_sae) / KL_zero, KL(clean || spliced) per target
The LM-based figures carry 95% bootstrap intervals over documents (paired).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


@torch.no_grad()
def activation_metrics(sae, x: torch.Tensor, batch: int = 4096) -> dict:
    """L0, FVU, dead fraction, relative reconstruction bias and per-latent density on raw rows x (N, d)."""
    fired = torch.zeros(sae.cfg.n_latents)
    err = tot = l0 = dot = sq = 0.0
    mean = x.mean(0)
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].float()
        f = sae.encode(xb)
        r = sae.decode(f)
        fired += (f > 0).sum(0).float()
        l0 += float((f > 0).sum())
        err += float((xb - r).pow(2).sum())
        tot += float((xb - mean).pow(2).sum())
        dot += float((xb * r).sum())
        sq += float(r.pow(2).sum())
    n = len(x)
    density = (fired / n).numpy()
    return {"n_rows": n, "l0": l0 / n, "fvu": err / tot, "explained_variance": 1 - err / tot,
            "dead_frac": float((density == 0).mean()), "rel_bias": sq / dot, "density": density}


def lm_metrics(sae, store, n_docs: int = 100, seq_len: int = 128, batch: int = 8, seed: int = 0) -> dict:
    """ΔCE, CE recovered (zero / mean ablation references) and KL score with the SAE spliced in at the store's
    layer, on the corpus's held-out (val) documents, with paired 95% document-bootstrap intervals."""
    from lmlab.acts.positions import encode_docs, store_prepend_bos
    from lmlab.acts.splice import splice_losses
    from lmlab.data.corpus import iter_documents
    from lmlab.models import load_causal_lm

    model, tok = load_causal_lm(store.model)
    cfg = store.meta.get("config", {})
    docs = [d.text for _, d in zip(range(n_docs), iter_documents(cfg.get("corpus"), split="val"))]
    enc = [e for e in encode_docs(tok, docs, seq_len, store_prepend_bos(store)) if len(e) > 1]
    mean = store.stats["mean"].float()
    conds = {"clean": None, "sae": lambda h: sae.decode(sae.encode(h.float())).to(h.dtype),
             "zero": lambda h: torch.zeros_like(h), "mean": lambda h: mean.to(h.dtype).expand_as(h)}
    d = splice_losses(model, tok, enc, store.layer, conds, batch, store_prepend_bos(store), kl=True)
    n = d["clean"]["n"]
    ce = {k: d[k]["ce"] for k in conds}
    return {"n_docs": len(enc), "n_tokens": int(n.sum()), **_lm_figures(ce, {k: d[k]["kl"] for k in conds}, n, seed)}


def _lm_figures(ce: dict, kl: dict, n: np.ndarray, seed: int, n_boot: int = 2000) -> dict:
    """Point estimates and paired document-bootstrap CIs of ΔCE, CE recovered and KL score."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(n), (n_boot, len(n)))

    def ratio(num, den):  # (1 - x_sae / x_ref)-style ratios on resampled documents
        return lambda i: num(i) / den(i)

    m = lambda a, i=slice(None): a[i].sum(-1) / n[i].sum(-1)  # mean per target (on resamples too)
    figs = {"ce_clean": m(ce["clean"]), "ce_sae": m(ce["sae"]), "ce_zero": m(ce["zero"]), "ce_mean": m(ce["mean"]),
            "delta_ce": m(ce["sae"]) - m(ce["clean"]), "kl_sae": m(kl["sae"]), "kl_zero": m(kl["zero"])}
    stats = {"delta_ce": lambda i: m(ce["sae"], i) - m(ce["clean"], i),
             "ce_recovered_zero": ratio(lambda i: m(ce["zero"], i) - m(ce["sae"], i),
                                        lambda i: m(ce["zero"], i) - m(ce["clean"], i)),
             "ce_recovered_mean": ratio(lambda i: m(ce["mean"], i) - m(ce["sae"], i),
                                        lambda i: m(ce["mean"], i) - m(ce["clean"], i)),
             "kl_score": ratio(lambda i: m(kl["zero"], i) - m(kl["sae"], i), lambda i: m(kl["zero"], i))}
    full = slice(None)
    out = {k: float(v) for k, v in figs.items()}
    out.update({k: float(f(full)) for k, f in stats.items()})
    out["ci95"] = {k: [float(np.percentile(f(idx), 2.5)), float(np.percentile(f(idx), 97.5))] for k, f in stats.items()}
    return out


def evaluate_sae(sae_path: str | Path, store_path: str | Path, n_rows: int = 20_000, n_docs: int = 100,
                 seq_len: int = 128, lm: bool = True, seed: int = 0) -> dict:
    """Every metric of the module docstring for one SAE (lmlab run or SAELens folder) on a store: activation
    metrics on held-out rows, LM metrics on held-out documents (lm=False skips the LM)."""
    from lmlab.acts.store import ActivationStore, split_rows
    from lmlab.errors import DataError
    from lmlab.sae.saelens import load_sae

    sae, store = load_sae(sae_path), ActivationStore.open(store_path)
    if sae.cfg.d_in != store.d_model:
        raise DataError(f"the SAE reads d={sae.cfg.d_in} activations, the store holds d={store.d_model}",
                        "evaluate it on a store of the model and layer it was trained on")
    _, held = split_rows(store)
    rng = np.random.default_rng([seed, 3])
    x = store.get(np.sort(rng.choice(held, size=min(n_rows, len(held)), replace=False)))
    act = activation_metrics(sae, x)
    density = act.pop("density")
    hist, edges = np.histogram(np.log10(density[density > 0]), bins=40) if (density > 0).any() else ([], [])
    out = {"sae": str(sae_path), "store": str(store_path), "layer": store.layer, "n_latents": sae.cfg.n_latents,
           "k": sae.cfg.k, "variant": sae.cfg.variant, **act,
           "density_hist": {"log10_edges": [float(e) for e in edges], "counts": [int(c) for c in hist]}}
    if lm:
        out["lm"] = lm_metrics(sae, store, n_docs, seq_len, seed=seed)
    return out


def density_plot(result: dict, png: str | Path) -> Path:
    """Histogram of log10 feature density (the fraction of held-out rows each live latent fires on)."""
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 3.6), dpi=110)
    h = result["density_hist"]
    if h["counts"]:
        edges = h["log10_edges"]
        ax.bar(edges[:-1], h["counts"], width=np.diff(edges), align="edge", color="0.4")
    ax.set(xlabel="log10 feature density", ylabel="latents",
           title=f"SAE {result['n_latents']} latents, k {result['k']}: dead {100 * result['dead_frac']:.1f}%")
    fig.tight_layout()
    return save_png(fig, png)

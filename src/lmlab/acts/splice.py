"""Splice reconstructions into the LM and measure what it costs (GLP §3's ΔLM; the SAE literature's ΔCE,
CE-loss-recovered and KL score): the layer-L residual at exactly the positions a harvest stores
(acts/positions.py) is replaced by fn(rows), and the next-token loss is averaged over real (non-pad) targets
only (the GLP anchor's script also averages zeroed pad positions, which biases it by length).

Per document we return summed CE, summed KL(base || spliced) and the number of targets, so every figure
gets a paired bootstrap over documents (`paired_delta_ci`): the same documents under both conditions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Splice = Callable[[torch.Tensor], torch.Tensor] | None
"""fn(rows) -> rows; a fn with a true attribute `wants_sel` is called as fn(rows, sel) with the (b, T) mask sel
the rows were taken with (doc-major), e.g. a sequence-aware GLP that needs each row's preceding positions."""


@torch.no_grad()
def _target_logp(model, ids, mask, layer: int, sel, fn: Splice) -> torch.Tensor:
    """(b, T-1, vocab) next-token log-probabilities with rows h[sel] replaced by fn(h[sel]) (fn None: as is;
    fn.wants_sel: fn(h[sel], sel))."""
    from lmlab.acts.hooks import write_residual

    def splice(h):
        h = h.clone()
        h[sel] = fn(h[sel], sel) if getattr(fn, "wants_sel", False) else fn(h[sel])
        return h

    if fn is None:
        logits = model(ids, attention_mask=mask).logits
    else:
        with write_residual(model, layer, splice):
            logits = model(ids, attention_mask=mask).logits
    return torch.log_softmax(logits[:, :-1].float(), dim=-1)


@torch.no_grad()
def splice_losses(model, tok, enc: list[list[int]], layer: int, conds: dict[str, Splice], batch: int = 8,
                  prepend_bos: bool = True, kl: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """{condition: {"ce": (docs,), "kl": (docs,) (with kl=True), "n": (docs,)}} per-document sums over real
    targets. fn None is the unspliced model; with kl=True it is run once per batch as the KL reference."""
    from lmlab.acts.positions import keep_positions, pad_batch, pad_id

    out = {name: {"ce": [], "kl": [], "n": []} for name in conds}
    for i in range(0, len(enc), batch):
        ids, mask = pad_batch(enc[i:i + batch], pad_id(tok))
        sel = keep_positions(tok, ids, mask, prepend_bos)  # (b, T)
        tgt, w = ids[:, 1:], mask[:, 1:].double()
        base = _target_logp(model, ids, mask, layer, sel, None) if kl else None
        for name, fn in conds.items():
            logp = base if (fn is None and base is not None) else _target_logp(model, ids, mask, layer, sel, fn)
            ce = -logp.gather(-1, tgt[..., None]).squeeze(-1).double()  # (b, T-1)
            out[name]["ce"].append((ce * w).sum(1).numpy())
            out[name]["n"].append(w.sum(1).numpy())
            if kl:
                k = (base.exp() * (base - logp)).sum(-1).double()  # KL(base || spliced) per target
                out[name]["kl"].append((k * w).sum(1).numpy())
    return {name: {k: np.concatenate(v) for k, v in d.items() if v} for name, d in out.items()}


def lm_doc_losses(model, tok, enc: list[list[int]], layer: int, fn: Splice, batch: int,
                  prepend_bos: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per document: (summed next-token loss over real targets, number of real targets) under one splice."""
    d = splice_losses(model, tok, enc, layer, {"x": fn}, batch, prepend_bos)["x"]
    return d["ce"], d["n"]


def lm_loss_spliced(model, tok, enc: list[list[int]], layer: int, fn: Splice, batch: int,
                    prepend_bos: bool = True) -> float:
    """Mean next-token loss over real targets under one splice."""
    tot, n = lm_doc_losses(model, tok, enc, layer, fn, batch, prepend_bos)
    return float(tot.sum() / max(n.sum(), 1))


def paired_delta_ci(tot: np.ndarray, n: np.ndarray, base: np.ndarray, n_boot: int = 2000, seed: int = 0) -> list[float]:
    """95% bootstrap interval of sum(tot)/sum(n) - sum(base)/sum(n), resampling documents (paired: the same
    documents under both conditions)."""
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(n), (n_boot, len(n)))
    d = tot[i].sum(1) / n[i].sum(1) - base[i].sum(1) / n[i].sum(1)
    return [float(np.percentile(d, 2.5)), float(np.percentile(d, 97.5))]

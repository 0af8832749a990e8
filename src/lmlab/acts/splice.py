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

    if fn is None:
        logits = model(ids, attention_mask=mask).logits
    else:
        with write_residual(model, layer, lambda h: _spliced(h, sel, fn)):
            logits = model(ids, attention_mask=mask).logits
    return torch.log_softmax(logits[:, :-1].float(), dim=-1)


def _spliced(h: torch.Tensor, sel: torch.Tensor, fn: Splice) -> torch.Tensor:
    """h (b, T, d) with rows h[sel] replaced by fn(h[sel]) (fn.wants_sel: fn(h[sel], sel)); fn None: h."""
    if fn is None:
        return h
    h = h.clone()
    h[sel] = fn(h[sel], sel) if getattr(fn, "wants_sel", False) else fn(h[sel])
    return h


@torch.no_grad()
def _prefix(model, ids, mask, layer: int):
    """Run blocks 0..layer once: (h (b, T, d) the block-L output, tail) with tail(h) -> (b, T, vocab) logits from
    blocks L+1.. given the very inputs the full forward passes them (captured by a pre-hook: attention mask,
    rotary embeddings, positions), then the final norm and the LM head. Every splice condition of a batch then
    shares the blocks below L (the same operations as a full forward, run once instead of per condition). None
    for a model whose tail lmlab cannot run this way (not Llama-shaped: model.model.layers / .norm, lm_head)."""
    from lmlab.acts.hooks import _hidden, _Stop, check_layer

    inner = getattr(model, "model", None)
    blocks = getattr(inner, "layers", None)
    if not (isinstance(blocks, torch.nn.ModuleList) and hasattr(inner, "norm") and hasattr(model, "lm_head")):
        return None
    check_layer(model, layer)
    got: dict = {}

    def grab_next(m, args, kwargs):  # inputs of block L + 1: args[0] is block L's output
        got["h"], got["args"], got["kwargs"] = (args[0] if args else kwargs.pop("hidden_states")), args[1:], kwargs
        raise _Stop

    def grab_last(m, args, out):
        got["h"], got["args"], got["kwargs"] = _hidden(out), (), {}
        raise _Stop

    last = layer == len(blocks) - 1
    handle = (blocks[layer].register_forward_hook(grab_last) if last else
              blocks[layer + 1].register_forward_pre_hook(grab_next, with_kwargs=True))
    try:  # no KV cache: the captured inputs are reused by every condition's tail
        model(ids, attention_mask=mask, use_cache=False)
    except _Stop:
        pass
    finally:
        handle.remove()
    if "h" not in got:
        return None

    def tail(h: torch.Tensor) -> torch.Tensor:
        for block in blocks[layer + 1:]:
            h = _hidden(block(h, *got["args"], **got["kwargs"]))
        return model.lm_head(inner.norm(h))

    return got["h"], tail


def _batch_logp(model, ids, mask, layer: int, sel, fast: bool):
    """fn -> (b, T-1, vocab) next-token log-probabilities of one batch under splice fn: through `_prefix`'s shared
    lower blocks when fast and the model allows it, else a full hooked forward per call."""
    pre = _prefix(model, ids, mask, layer) if fast else None
    if pre is None:
        return lambda fn: _target_logp(model, ids, mask, layer, sel, fn)
    h, tail = pre
    return lambda fn: torch.log_softmax(tail(_spliced(h, sel, fn))[:, :-1].float(), dim=-1)


@torch.no_grad()
def splice_losses(model, tok, enc: list[list[int]], layer: int, conds: dict[str, Splice], batch: int = 8,
                  prepend_bos: bool = True, kl: bool = False, fast: bool = True) -> dict[str, dict[str, np.ndarray]]:
    """{condition: {"ce": (docs,), "kl": (docs,) (with kl=True), "n": (docs,)}} per-document sums over real
    targets. fn None is the unspliced model; with kl=True it is run once per batch as the KL reference.
    fast: the blocks below L run once per batch for all conditions (`_prefix`; Llama-shaped models), else each
    condition runs the full forward with a hook."""
    from lmlab.acts.positions import keep_positions, pad_batch, pad_id

    out = {name: {"ce": [], "kl": [], "n": []} for name in conds}
    for i in range(0, len(enc), batch):
        ids, mask = pad_batch(enc[i:i + batch], pad_id(tok))
        sel = keep_positions(tok, ids, mask, prepend_bos)  # (b, T)
        tgt, w = ids[:, 1:], mask[:, 1:].double()
        logp_of = _batch_logp(model, ids, mask, layer, sel, fast)
        base = logp_of(None) if kl else None
        for name, fn in conds.items():
            logp = base if (fn is None and base is not None) else logp_of(fn)
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

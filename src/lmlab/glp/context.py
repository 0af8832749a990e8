"""Causal context for the sequence-aware GLP prior (net.DenoiserConfig.context = K > 0; the paper's conclusion
names "sequence-aware" multi-token priors as future work, reference glp.md §8).

Position t of a document sees the clean activations at positions t-1, ..., t-K of the same document, and
nothing else: slot j - 1 holds distance j, and a slot is masked (False) when position t - j is not there (the
document's start, or a position the harvest did not store: BOS and other special tokens). Two sources of the
same rule:
  - a store: `context_index` finds, from the provenance (doc, pos) alone, the row of (doc, pos - j) for every
    row (rows may be in any order and documents interleaved); `gather_context` reads them;
  - a spliced LM batch: `context_from_sel` rebuilds it from the (b, T) mask of selected positions (acts/splice.py
    passes the selected rows doc-major, as `h[sel]` orders them), so ΔLM conditions on the real, unspliced
    preceding activations exactly as training did.
"""

from __future__ import annotations

import numpy as np
import torch

from lmlab.errors import DataError

_HINT = "harvest the store with `lmlab acts harvest` (it records each row's document and position), or use --context 0"


def context_index(prov: np.ndarray, k: int) -> np.ndarray:
    """(N, k) int64 store rows of positions pos - 1, ..., pos - k of each row's document (-1: not stored).
    Vectorised: one sort of the (doc, pos) keys, then k binary searches (a few seconds for millions of rows)."""
    doc, pos = prov["doc"].astype(np.int64), prov["pos"].astype(np.int64)
    if len(prov) and (pos.min() < 0 or doc.min() < 0):
        raise DataError("the store's provenance has negative documents or positions", _HINT)
    span = int(pos.max()) + 1 if len(prov) else 1
    key = doc * span + pos  # unique per (doc, pos); pos - j < 0 is excluded below, so no key crosses documents
    order = np.argsort(key, kind="stable")
    skey = key[order]
    if len(skey) > 1 and (np.diff(skey) == 0).any():
        raise DataError("the store holds the same (document, position) more than once: its provenance cannot "
                        "order the rows", _HINT)
    out = np.full((len(prov), k), -1, dtype=np.int64)
    for j in range(1, k + 1):
        want = key - j
        at = np.minimum(np.searchsorted(skey, want), len(skey) - 1)
        ok = (pos >= j) & (skey[at] == want)
        out[ok, j - 1] = order[at[ok]]
    return out


def check_context(index: np.ndarray, train_rows: np.ndarray, held_rows: np.ndarray) -> None:
    """A usable context index: some training row has context, and no training row's context is held out."""
    if index.shape[1] and not (index[train_rows] >= 0).any():
        raise DataError("no training row of the store has a stored previous position of its own document", _HINT)
    leak = np.isin(index[train_rows], held_rows)
    if leak.any():
        raise DataError(f"{int(leak.sum())} context rows of training rows are held out (documents split across the "
                        "held-out boundary)", "re-harvest the store: documents must keep one doc index")


def gather_context(store, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw context rows (B, k, d) float32 and mask (B, k) bool for the context index rows idx (B, k) (-1: zero
    rows, masked)."""
    idx = np.asarray(idx, dtype=np.int64)
    mask = idx >= 0  # (B, k)
    ctx = torch.zeros(*idx.shape, store.d_model)
    if mask.any():
        ctx[torch.from_numpy(mask)] = store.get(idx[mask]).float()
    return ctx, torch.from_numpy(mask)


def context_from_sel(h: torch.Tensor, sel: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Context of the selected rows of a padded batch. h (n, d): the rows h_full[sel], doc-major (row b, then
    column t, as boolean indexing orders them); sel (b, T) bool. Returns ctx (n, k, d) with ctx[i, j - 1] = the
    row at (b, t - j) when that position is selected, and mask (n, k)."""
    sel = sel.to(h.device)
    b, T = sel.shape
    where = torch.full((b, T), -1, dtype=torch.long, device=sel.device)
    where[sel] = torch.arange(int(sel.sum()), device=sel.device)  # (b, T) row of h at each selected position
    rb, rt = sel.nonzero(as_tuple=True)  # (n,) each row's batch row and column, in h's order
    j = torch.arange(1, k + 1, device=sel.device)
    col = rt[:, None] - j[None]  # (n, k)
    src = torch.where(col >= 0, where[rb[:, None].expand_as(col), col.clamp_min(0)], -1)  # (n, k)
    mask = src >= 0
    ctx = h.new_zeros(len(h), k, h.shape[1])
    ctx[mask] = h[src[mask]]
    return ctx, mask

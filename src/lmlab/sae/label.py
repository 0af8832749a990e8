"""Token labels from SAE latents (Rathi & Radford 2026 §5.1; token_filtering_sae.md §2.2), without an LLM.

1. Concept latents: per latent, the document-level mean activation of documents of a labelled domain (e.g. the
   embedded corpus's medical entries) vs the rest; the latents with the highest AUC on a training half of the
   documents are chosen, and the same AUCs on the held-out half check the choice (`choose_latents`).
2. Thresholds: per chosen latent, mean + 4 SD of its activation over a background sample of tokens (BOS and
   other special tokens excluded: they are never in a store).
3. The rule (`label_tokens`): a token is a seed when >= 2 chosen latents exceed their thresholds; then any
   unlabelled token with activation > 0 on >= 1 chosen latent next to a labelled token is labelled, repeated
   until nothing changes (span growth: "insert the catheter", not only "catheter"). Special tokens never are.
4. Transfer (`transfer_labels`): labels move to another tokenizer by character spans — a target token is
   positive when its span overlaps any positive source token's span (the paper's rule).
"""

from __future__ import annotations

import numpy as np
import torch


def auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """ROC AUC per column of scores (n_pos, m) vs (n_neg, m) via the rank-sum (Mann-Whitney U), ties averaged."""
    from scipy.stats import rankdata

    x = np.concatenate([pos, neg])
    r = rankdata(x, axis=0)
    n1, n0 = len(pos), len(neg)
    return (r[:n1].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)


def choose_latents(doc_acts: np.ndarray, is_domain: np.ndarray, n_latents: int = 8, seed: int = 0) -> dict:
    """Pick the latents whose per-document mean activation (docs, latents) best separates the domain's documents
    (is_domain (docs,) bool) from the rest, on a random half of the documents; report their AUC on the other half.
    Raises a DataError when the domain or the rest is absent."""
    from lmlab.errors import DataError

    if is_domain.all() or not is_domain.any():
        raise DataError(f"the documents hold {int(is_domain.sum())} of {len(is_domain)} in the domain",
                        "label documents of the domain AND others (the rule needs both to choose latents)")
    rng = np.random.default_rng(seed)
    train = np.zeros(len(is_domain), dtype=bool)  # a stratified half: both halves hold both kinds of documents
    for group in (np.nonzero(is_domain)[0], np.nonzero(~is_domain)[0]):
        train[rng.permutation(group)[:(len(group) + 1) // 2]] = True
    if (is_domain & ~train).sum() == 0 or (~is_domain & ~train).sum() == 0:
        raise DataError(f"too few documents to hold any out ({int(is_domain.sum())} in the domain, "
                        f"{int((~is_domain).sum())} others)", "label at least 2 documents of each kind")
    a_tr = auc(doc_acts[train & is_domain], doc_acts[train & ~is_domain])
    chosen = np.argsort(-a_tr)[:n_latents]
    a_te = auc(doc_acts[~train & is_domain][:, chosen], doc_acts[~train & ~is_domain][:, chosen])
    return {"latents": chosen.tolist(), "train_auc": a_tr[chosen].tolist(), "heldout_auc": a_te.tolist(),
            "n_docs": int(len(is_domain)), "n_domain_docs": int(is_domain.sum())}


def thresholds(background: torch.Tensor, sd: float = 4.0) -> torch.Tensor:
    """(m,) mean + sd * SD of each chosen latent's activation over background tokens (N, m)."""
    return background.float().mean(0) + sd * background.float().std(0)


def label_tokens(acts: torch.Tensor, thr: torch.Tensor, special: torch.Tensor | None = None,
                 min_latents: int = 2) -> torch.Tensor:
    """(T,) bool labels of one document from its chosen-latent activations (T, m): seeds where >= min_latents
    latents exceed thr (m,), grown over neighbours with activation > 0 on >= 1 latent until convergence;
    positions marked in `special` (T,) bool are never labelled."""
    never = special if special is not None else torch.zeros(len(acts), dtype=torch.bool)
    lab = ((acts > thr).sum(1) >= min_latents) & ~never
    grow = (acts > 0).any(1) & ~never
    while True:
        near = torch.zeros_like(lab)
        near[1:] |= lab[:-1]
        near[:-1] |= lab[1:]
        new = lab | (near & grow)
        if torch.equal(new, lab):
            return lab
        lab = new


def transfer_labels(src_spans: list[tuple[int, int]], src_labels, dst_spans: list[tuple[int, int]]) -> np.ndarray:
    """Labels for target tokens with character spans dst_spans: positive when the span overlaps a positive
    source span (half-open [start, end) character offsets into the same text)."""
    end = max([e for _, e in src_spans] + [e for _, e in dst_spans] + [0])
    marked = np.zeros(end + 1, dtype=np.int64)  # marked[c] = 1 when character c belongs to a positive token
    for (s, e), y in zip(src_spans, src_labels):
        if y:
            marked[s:e] = 1
    csum = np.concatenate([[0], np.cumsum(marked)])  # positives among characters [0, c)
    return np.array([csum[e] - csum[s] > 0 for s, e in dst_spans], dtype=bool)

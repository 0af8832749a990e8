"""The biLM of token-level filtering (Rathi & Radford 2026 §5.2; token_filtering_sae.md §2.4): two lmlab GPTs,
one trained left-to-right and one on reversed windows (`lmlab lm train --set reverse=true`), whose residual
streams at one layer are concatenated per position, so the probe at position t sees the whole context:

    h(t) = [ h_fwd(x_1..x_t) ; h_bwd(x_T..x_t) ]        (B, T, 2d)

The backward model reads the *flipped* sequence and its states are flipped back before concatenation. The
released code has two bugs here (reference §2.4): its training loop never passes `reverse`, so both halves are
left-to-right models, and its feature function feeds the *unflipped* sequence to the "right" model. Both are
available as variants for the ablation: "released" (unflipped input to the second model) and "ltr" (the forward
half alone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple

import torch

Variant = Literal["bilm", "released", "ltr"]


class BiLM(NamedTuple):
    fwd: torch.nn.Module
    bwd: torch.nn.Module | None
    tok: object
    """The lmlab Tokenizer both halves were trained with."""


def load_bilm(fwd_run: str | Path, bwd_run: str | Path | None) -> BiLM:
    """The two halves from lmlab LM run directories; refuses a pair trained on different tokenizers, a backward
    run that is not right-to-left, or a forward run that is."""
    from lmlab.errors import DataError
    from lmlab.io import read_json
    from lmlab.lm.train import load_run_model

    def reverse(run) -> bool:  # lm/train.py saves {"model": ..., "train": TrainConfig}
        return bool(read_json(Path(run) / "config.json").get("train", {}).get("reverse", False))

    fwd, tok = load_run_model(fwd_run)
    if reverse(fwd_run):
        raise DataError(f"{fwd_run} is a right-to-left LM", "pass the left-to-right run as the forward half")
    if bwd_run is None:
        return BiLM(fwd, None, tok)
    bwd, tok_b = load_run_model(bwd_run)
    if not reverse(bwd_run):
        raise DataError(f"{bwd_run} is not a right-to-left LM",
                        "train the backward half with `lmlab lm train --set reverse=true`")
    if tok.fingerprint() != tok_b.fingerprint():
        raise DataError(f"the biLM halves use different tokenizers ({fwd_run}, {bwd_run})",
                        "train both halves on the same prepared dataset")
    return BiLM(fwd, bwd, tok)


@torch.no_grad()
def bilm_states(bilm: BiLM, ids: torch.Tensor, layer: int, variant: Variant = "bilm") -> torch.Tensor:
    """Features of every position of ids (B, T): (B, T, 2d) for "bilm" / "released", (B, T, d) for "ltr".
    `layer` = residual after that many blocks of each half."""
    hf = bilm.fwd.hidden(ids, layer)  # (B, T, d): position t has read x_1..x_t
    if variant == "ltr":
        return hf
    if bilm.bwd is None:
        raise ValueError(f"variant {variant!r} needs the backward half")
    if variant == "released":
        hb = bilm.bwd.hidden(ids, layer)  # the released code: unflipped input, so it also reads x_1..x_t
    else:
        hb = bilm.bwd.hidden(ids.flip(1), layer).flip(1)  # (B, T, d): position t has read x_T..x_t
    return torch.cat([hf, hb], dim=-1)


@torch.no_grad()
def document_states(bilm: BiLM, tokens, docs: list[tuple[int, int]], layer: int, variant: Variant = "bilm",
                    seq_len: int | None = None, batch: int = 64) -> list[torch.Tensor]:
    """Per document [s, e) of the token array: its features (e - s, F) (float32). A document is cut into chunks of
    seq_len (default: the model's context), each read on its own in both directions; chunks of equal length from
    all documents are batched."""
    import numpy as np

    seq_len = seq_len or bilm.fwd.cfg.max_seq_len
    chunks = [(i, c, min(e, c + seq_len)) for i, (s, e) in enumerate(docs) for c in range(s, e, seq_len)]
    by_len: dict[int, list] = {}
    for ch in chunks:
        by_len.setdefault(ch[2] - ch[1], []).append(ch)
    feats: dict[tuple[int, int], torch.Tensor] = {}
    for group in by_len.values():
        for k in range(0, len(group), batch):
            part = group[k:k + batch]
            ids = torch.as_tensor(np.stack([tokens[c:e] for _, c, e in part]).astype(np.int64))  # (b, T)
            for (i, c, _), f in zip(part, bilm_states(bilm, ids, layer, variant).float()):
                feats[(i, c)] = f
    return [torch.cat([feats[(i, c)] for c in range(s, e, seq_len)]) for i, (s, e) in enumerate(docs)]

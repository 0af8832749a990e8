"""Which token positions of a tokenized document count: the one rule that harvesting, steering directions,
probing, ΔLM splices and token labels all use, so that every stage reads the same positions the activation
store holds.

The rule (DESIGN.md "Layer index"): documents are encoded with the tokenizer's own special tokens plus a BOS
in front when the tokenizer has one and did not add it (`encode_docs`); a position counts when it is a real
token (not padding) and not a special token (BOS, EOS, chat markers: they carry outlier norms — the GLP
paper's `exclude_bos`, sparsify #102). A tokenizer without any BOS token has nothing to carry the attention
sink, so the first real position of every document is the sink itself and is dropped instead.
"""

from __future__ import annotations

from typing import Literal


def encode_docs(tok, texts: list[str], seq_len: int, prepend_bos: bool = True) -> list[list[int]]:
    """Token ids as every stage feeds them: the tokenizer's own special tokens, plus a BOS in front when the
    tokenizer has one and did not add it; truncated to seq_len."""
    bos = tok.bos_token_id if prepend_bos else None
    enc = tok(texts, add_special_tokens=True, truncation=True, max_length=seq_len)["input_ids"]
    if bos is None:
        return enc
    return [ids[:seq_len] if ids and ids[0] == bos else ([bos] + ids)[:seq_len] for ids in enc]


def pad_id(tok) -> int:
    """The id used for padding (never attended to, never counted): the tokenizer's pad token, else 0."""
    return tok.pad_token_id if tok.pad_token_id is not None else 0


def pad_batch(seqs: list[list[int]], pad: int, side: Literal["right", "left"] = "right"):
    """Pad to the longest sequence: ids (b, T) and attention mask (b, T). Left padding puts every row's last
    token in the last column (generation with a last-position edit)."""
    import torch

    T = max(len(x) for x in seqs)
    ids = torch.full((len(seqs), T), pad, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for r, x in enumerate(seqs):
        sl = slice(0, len(x)) if side == "right" else slice(T - len(x), T)
        ids[r, sl] = torch.tensor(x, dtype=torch.long)
        mask[r, sl] = 1
    return ids, mask


def keep_positions(tok, ids, mask, prepend_bos: bool = True):
    """(b, T) bool: the positions of a padded batch (ids, mask from `pad_batch` over `encode_docs` output)
    whose activations count. With prepend_bos and a tokenizer that has no BOS, each row's first real position
    (the attention sink) is dropped; with prepend_bos=False the caller chose to keep it (harvest option)."""
    import torch

    special = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)
    keep = mask.bool() & ~torch.isin(ids, special)
    if prepend_bos and tok.bos_token_id is None:
        first = mask.long().argmax(1)  # (b,) first real column: 0 when right-padded
        keep[torch.arange(len(ids)), first] = False
    return keep


def store_prepend_bos(store) -> bool:
    """The harvest's prepend_bos setting recorded in a store's manifest (True for stores that predate it)."""
    return bool(store.meta.get("config", {}).get("prepend_bos", True))

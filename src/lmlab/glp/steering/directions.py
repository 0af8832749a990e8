"""Steering directions: the shipped concept sets (corpus-domain pairs and files under glp/concepts/), the
token-averaged layer-L activations of a text set, DiffMean (Marks & Tegmark 2023; the paper's sentiment
direction) and user vectors from safetensors files."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from lmlab.errors import ConfigError, DataError

CONCEPT_DIR = Path(__file__).parent.parent / "concepts"  # concept sets, keywords, neutral prompts
CORPUS_CONCEPTS = {"medical": ("medical", "general"), "python": ("python", "general")}  # (positive, negative) domain
FILE_CONCEPTS = {"sentiment": "sentiment.json"}


def concept_names() -> list[str]:
    return sorted([*CORPUS_CONCEPTS, *FILE_CONCEPTS])


def concept_texts(name: str, n_docs: int = 128) -> tuple[list[str], list[str]]:
    """(positive, negative) texts of a concept: a corpus-domain pair, a shipped list, or a JSON file with
    "positive" and "negative" lists."""
    if name in CORPUS_CONCEPTS:
        from lmlab.data.corpus import iter_documents

        pos, neg = CORPUS_CONCEPTS[name]
        take = lambda dom: [d.text for _, d in zip(range(n_docs), iter_documents("embedded", "train", [dom]))]
        return take(pos), take(neg)
    path = CONCEPT_DIR / FILE_CONCEPTS[name] if name in FILE_CONCEPTS else Path(name)
    if not (path.suffix == ".json" and path.is_file()):
        raise ConfigError(f"unknown concept set {name!r}",
                          f"use one of {', '.join(concept_names())}, or a .json file with positive/negative lists")
    d = json.loads(path.read_text())
    pos, neg = d.get("positive"), d.get("negative")
    if not (isinstance(pos, list) and isinstance(neg, list) and pos and neg):
        raise DataError(f"{path} needs non-empty 'positive' and 'negative' lists of texts", "fix the file")
    return [str(t) for t in pos], [str(t) for t in neg]


def keywords(name: str) -> set[str] | None:
    kw = json.loads((CONCEPT_DIR / "keywords.json").read_text())
    return set(kw[name]) if name in kw else None


@torch.no_grad()
def pooled_acts(model, tok, layer: int, texts: list[str], seq_len: int = 64, batch: int = 16,
                prepend_bos: bool = True) -> torch.Tensor:
    """(n, d) mean of the layer-L residual (blocks 0..L only) over the positions of each text that a harvest
    stores (acts/positions.py)."""
    from lmlab.acts.hooks import forward_to_layer
    from lmlab.acts.positions import encode_docs, keep_positions, pad_batch, pad_id

    enc = encode_docs(tok, texts, seq_len, prepend_bos)
    out = []
    for i in range(0, len(enc), batch):
        ids, mask = pad_batch(enc[i:i + batch], pad_id(tok))
        h = forward_to_layer(model, ids, layer, attention_mask=mask).float()  # (b, T, d)
        keep = keep_positions(tok, ids, mask, prepend_bos).float()  # (b, T)
        out.append((h * keep[..., None]).sum(1) / keep.sum(1, keepdim=True).clamp_min(1))
    return torch.cat(out)


@dataclass
class Direction:
    w: torch.Tensor
    """(d,) unit steering direction."""
    s_pos: float = 1.0
    """Mean projection <pooled activation, w> of the positive set (concept score 1)."""
    s_neg: float = 0.0
    """Mean projection of the negative set (concept score 0)."""
    name: str = "vector"


def diffmean(model, tok, layer: int, pos: list[str], neg: list[str], name: str = "", seq_len: int = 64,
             prepend_bos: bool = True) -> Direction:
    """DiffMean (Marks & Tegmark 2023; the paper's sentiment direction): mean(pos) - mean(neg), unit-normalised."""
    a = pooled_acts(model, tok, layer, pos, seq_len, prepend_bos=prepend_bos)
    b = pooled_acts(model, tok, layer, neg, seq_len, prepend_bos=prepend_bos)
    w = a.mean(0) - b.mean(0)
    w = w / w.norm()
    return Direction(w, float((a @ w).mean()), float((b @ w).mean()), name)


def load_vector(path: str | Path, d: int) -> Direction:
    """A user-given direction from a safetensors file (one tensor, or the key "vector"), unit-normalised."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no vector file {path}", "pass a .safetensors file holding one (d,) tensor")
    t = load_file(str(path))
    v = t.get("vector", next(iter(t.values())) if len(t) == 1 else None)
    if v is None:
        raise DataError(f"{path} holds {len(t)} tensors and none is named 'vector'", "save the direction as 'vector'")
    v = v.float().reshape(-1) if v.dim() == 2 and 1 in v.shape else v.float()
    if v.dim() != 1 or v.numel() != d:
        raise DataError(f"steering vector in {path} has shape {tuple(v.shape)}, the layer has d={d}",
                        f"give a ({d},) vector for this model and layer")
    if not torch.isfinite(v).all() or v.norm() == 0:
        raise DataError(f"steering vector in {path} is zero or not finite", "give a non-zero finite vector")
    return Direction(v / v.norm(), 1.0, 0.0, path.stem)


def check_direction_args(concept: str | None, vector: str | None, d_model: int) -> None:
    """Fail before any model is loaded: a known concept set (or readable .json) and a vector of the right size."""
    if vector is not None:
        load_vector(vector, d_model)
    elif concept is None:
        raise ConfigError("no steering direction", "pass --concept NAME or --vector FILE.safetensors")
    if concept is not None and concept not in CORPUS_CONCEPTS:
        concept_texts(concept)


def find_direction(model, tok, layer: int, d_model: int, concept: str | None, vector: str | None,
                   n_docs: int = 128, prepend_bos: bool = True) -> Direction:
    """A DiffMean concept direction or a user vector; with a vector, a concept (if given) scales the score."""
    if vector is not None:
        v = load_vector(vector, d_model)
        if concept is not None:
            pos, neg = concept_texts(concept, n_docs)
            v.s_pos = float((pooled_acts(model, tok, layer, pos, prepend_bos=prepend_bos) @ v.w).mean())
            v.s_neg = float((pooled_acts(model, tok, layer, neg, prepend_bos=prepend_bos) @ v.w).mean())
        return v
    if concept is None:
        raise ConfigError("no steering direction", "pass --concept NAME or --vector FILE.safetensors")
    pos, neg = concept_texts(concept, n_docs)
    return diffmean(model, tok, layer, pos, neg, name=Path(concept).stem, prepend_bos=prepend_bos)

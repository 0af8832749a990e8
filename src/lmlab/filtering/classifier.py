"""Distil SAE token labels into a cheap classifier (Rathi & Radford 2026 §5.2; reference §2.4): features of every
labelled token from a biLM (bilm.py) at one layer, an L-BFGS logistic probe (probe.py) trained on a document split
of the labels, the F1-optimal threshold on the validation documents, metrics on the test documents against the
SAE labels — for every layer, and for the variants the paper's released code implies ("released": the second
half reads the unflipped sequence; "ltr": the forward half alone). A document classifier (the same probe on
mean-pooled features) serves document filtering.

Inputs: a label shard (`lmlab sae label ... --tokenizer DATA`: labels.bin + labels.side, documents after an
end-of-text token, side = 1.0 on positive tokens) and labels.jsonl beside it (document order, entry spans for the
document targets).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

SPLITS = {"train": (0, 70), "val": (70, 85), "test": (85, 100)}
"""Documents per split, by a hash of the document index mod 100."""


def split_of(i: int) -> str:
    h = int.from_bytes(hashlib.sha1(f"cls:{i}".encode()).digest()[:4], "big") % 100
    return next(k for k, (lo, hi) in SPLITS.items() if lo <= h < hi)


def shard_documents(tokens: np.ndarray, eot_id: int) -> list[tuple[int, int]]:
    """[start, end) of each document of a label shard: from its end-of-text token to the next one."""
    starts = np.flatnonzero(tokens == eot_id)
    return [(int(s), int(e)) for s, e in zip(starts, list(starts[1:]) + [len(tokens)])]


@torch.no_grad()
def token_features(bilm, tokens: np.ndarray, docs: list[tuple[int, int]], layer: int, variant: str,
                   seq_len: int) -> tuple[torch.Tensor, np.ndarray]:
    """Features (N, F) of every non-separator token of `docs`, and the (N,) document index of each
    (bilm.document_states: chunks of seq_len, each read on its own)."""
    from lmlab.filtering.bilm import document_states

    per_doc = [f[1:] for f in document_states(bilm, tokens, docs, layer, variant, seq_len)]  # separators dropped
    return torch.cat(per_doc), np.concatenate([np.full(len(f), i) for i, f in enumerate(per_doc)])


def fit_token_classifier(x: torch.Tensor, y: np.ndarray, owner: np.ndarray, seed: int = 0) -> dict:
    """Probe on the train documents, threshold on val, metrics on val and test. Returns the probe and figures."""
    from lmlab.filtering.probe import metrics, metrics_ci, train_probe

    split = np.array([split_of(int(i)) for i in owner])
    tr, va, te = (split == "train"), (split == "val"), (split == "test")
    probe, info = train_probe(x[tr], y[tr], x[va], y[va], seed=seed)
    p_te = probe.prob(x[te]).numpy()
    test = {**metrics(p_te, y[te], info["threshold"]), "ci95": metrics_ci(p_te, y[te], owner[te], info["threshold"])}
    return {"probe": probe, **info, "test": test, "p_test": p_te, "test_mask": te,
            "n_train": int(tr.sum()), "n_val": int(va.sum()), "n_test": int(te.sum())}


def doc_targets(rows: list[dict], domain: str) -> np.ndarray:
    """(docs,) 1 when a labelled document holds any `domain` entry (its entry spans; else its own domain)."""
    return np.array([int(any(s[2] == domain for s in (r.get("entry_spans") or [[0, 0, r["domain"]]])))
                     for r in rows])


def fit_doc_classifier(x: torch.Tensor, owner: np.ndarray, targets: np.ndarray, seed: int = 0) -> dict:
    """The same probe on mean-pooled features per document (document filtering's classifier)."""
    from lmlab.filtering.probe import metrics, train_probe

    n = int(owner.max()) + 1
    pooled = torch.zeros(n, x.shape[1]).index_add_(0, torch.as_tensor(owner), x)
    pooled /= torch.bincount(torch.as_tensor(owner), minlength=n).clamp_min(1)[:, None]
    split = np.array([split_of(i) for i in range(n)])
    tr, va, te = (split == "train"), (split == "val"), (split == "test")
    probe, info = train_probe(pooled[tr], targets[tr], pooled[va], targets[va], l2s=(1e-2, 1e-1, 1.0), seed=seed)
    return {"probe": probe, **info, "test": metrics(probe.prob(pooled[te]).numpy(), targets[te], info["threshold"])}


def load_labels(labels_dir: str | Path, eot_id: int) -> tuple[np.ndarray, np.ndarray, list, list[dict]]:
    """(tokens, 0/1 labels, document ranges, labels.jsonl rows) of a label directory; one-line errors."""
    import json

    from lmlab.data.shards import open_shard
    from lmlab.errors import DataError

    d = Path(labels_dir)
    if not (d / "labels.bin").is_file():
        raise DataError(f"{d} has no labels.bin", "run `lmlab sae label ... --tokenizer DATA --out DIR` first")
    sh = open_shard(d / "labels.bin")
    if sh.side is None:
        raise DataError(f"{d}/labels.bin has no side channel (labels.side)", "re-run `lmlab sae label --tokenizer`")
    tokens = np.asarray(sh.tokens)
    docs = shard_documents(tokens, eot_id)
    rows = [json.loads(line) for line in (d / "labels.jsonl").read_text().splitlines()]
    if len(rows) != len(docs):
        raise DataError(f"{d}: labels.jsonl has {len(rows)} documents, labels.bin {len(docs)}",
                        "the shard was written with another tokenizer's end-of-text id; pass the biLM of that tokenizer")
    return tokens, (np.asarray(sh.side) >= 0.5).astype(np.int64), docs, rows


def train_classifier(labels_dir, fwd_run, bwd_run, out, domain: str = "medical", layers: list[int] | None = None,
                     variants: tuple[str, ...] = ("bilm", "released", "ltr"), seq_len: int | None = None,
                     seed: int = 0) -> dict:
    """Every (variant, layer) token probe; the best biLM layer by validation F1 is saved as the classifier
    (OUT/probe.safetensors, OUT/classifier.json) with its document classifier (OUT/doc_probe.safetensors)."""
    from lmlab.filtering.bilm import load_bilm
    from lmlab.filtering.probe import paired_diff

    bilm = load_bilm(fwd_run, bwd_run if any(v != "ltr" for v in variants) else None)
    tokens, lab, docs, rows = load_labels(labels_dir, bilm.tok.eot_id)
    y = np.concatenate([lab[s + 1:e] for s, e in docs])
    layers = layers or list(range(1, len(bilm.fwd.layers) + 1))
    seq_len = seq_len or bilm.fwd.cfg.max_seq_len
    table, best, fits = [], None, {}
    for variant in variants:
        for layer in layers:
            x, owner = token_features(bilm, tokens, docs, layer, variant, seq_len)
            r = fits[variant, layer] = fit_token_classifier(x, y, owner, seed)
            table.append({"variant": variant, "layer": layer, "l2": r["l2"], "threshold": r["threshold"],
                          "val": r["val"], "test": r["test"]})
            if variant == "bilm" and (best is None or r["val"]["f1"] > best["r"]["val"]["f1"]):
                best = {"layer": layer, "r": r, "x": x, "owner": owner}
    if best is None:
        raise ValueError("the saved classifier is the biLM's: include variant 'bilm'")
    doc = fit_doc_classifier(best["x"], best["owner"], doc_targets(rows, domain), seed)
    te = best["r"]["test_mask"]
    paired = [{"a": "bilm", "b": v, "layer": la, **paired_diff(fits["bilm", la]["p_test"], fits["bilm", la]["threshold"],
                                                                fits[v, la]["p_test"], fits[v, la]["threshold"],
                                                                y[te], best["owner"][te], seed=seed)}
              for (v, la) in fits if v != "bilm" and ("bilm", la) in fits]
    return _save_classifier(out, bilm, best, doc, table, paired, fwd_run, bwd_run, seq_len, domain, y)


def _save_classifier(out, bilm, best, doc, table, paired, fwd_run, bwd_run, seq_len, domain, y) -> dict:
    from lmlab.io import save_safetensors, write_json

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    r = best["r"]
    save_safetensors(out / "probe.safetensors", {"w": r["probe"].w, "b": torch.tensor([r["probe"].b])})
    save_safetensors(out / "doc_probe.safetensors", {"w": doc["probe"].w, "b": torch.tensor([doc["probe"].b])})
    info = {"fwd": str(fwd_run), "bwd": str(bwd_run), "layer": best["layer"], "variant": "bilm", "seq_len": seq_len,
            "domain": domain, "threshold": r["threshold"], "l2": r["l2"], "val": r["val"], "test": r["test"],
            "label_positive_rate": float(y.mean()), "n_tokens": int(len(y)),
            "tokenizer_sha256": bilm.tok.fingerprint(),
            "doc": {k: doc[k] for k in ("l2", "threshold", "val", "test")}, "table": table,
            "paired": paired}  # correct biLM minus each other variant at the same layer, same test documents
    write_json(out / "classifier.json", info)  # written last: its presence marks a finished classifier
    return info


@torch.no_grad()
def teacher_probe(labels_dir, model: str, layer: int, seed: int = 0, batch: int = 4) -> dict:
    """The reference the distilled classifier is compared with: the same probe on the labelling LM's own
    residual stream at `layer` (labels.jsonl holds that LM's token ids and labels; same document split)."""
    import json

    from lmlab.acts.hooks import forward_to_layer
    from lmlab.acts.positions import pad_batch, pad_id
    from lmlab.models import load_causal_lm

    rows = [json.loads(line) for line in (Path(labels_dir) / "labels.jsonl").read_text().splitlines()]
    lm, tok = load_causal_lm(model)
    feats, ys, owner = [], [], []
    for i in range(0, len(rows), batch):
        chunk = rows[i:i + batch]
        ids, mask = pad_batch([r["ids"] for r in chunk], pad_id(tok))
        h = forward_to_layer(lm, ids, layer, attention_mask=mask).float()  # (b, T, d)
        for j, r in enumerate(chunk):
            keep = torch.tensor([e > s for s, e in r["spans"]])  # specials (BOS) have no characters
            feats.append(h[j, :len(r["ids"])][keep])
            ys.append(np.asarray(r["labels"], dtype=np.int64)[keep.numpy()])
            owner.append(np.full(int(keep.sum()), i + j))
    r = fit_token_classifier(torch.cat(feats), np.concatenate(ys), np.concatenate(owner), seed)
    return {"model": model, "layer": layer, **{k: r[k] for k in ("l2", "threshold", "val", "test")}}

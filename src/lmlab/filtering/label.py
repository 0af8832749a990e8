"""Label a prepared dataset with the distilled classifier (Rathi & Radford 2026 §3.1; reference §2.5): p(forget)
for every token of DATA/train.bin into its float16 side channel DATA/train.side (what `lmlab lm train --set
mask=...` reads), and a document flag per document from the document classifier (what document filtering
drops). Each document is read on its own (the biLM sees exactly its document, in chunks of the biLM's context);
separators get p = 0.

Resumable and atomic: scores go into DATA/.train.side.partial (memory-mapped) document block by document block,
with DATA/.train.label.json recording how many documents are done and which classifier wrote them; after kill -9
the run continues at the first unfinished block, and the side channel appears (renamed into place) only when
every token has its score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch


def _load_classifier(cls_dir: Path):
    """(info, token probe, document probe, biLM) of a classifier directory."""
    from safetensors.torch import load_file

    from lmlab.errors import DataError
    from lmlab.filtering.bilm import load_bilm
    from lmlab.filtering.probe import Probe
    from lmlab.io import read_json

    if not (cls_dir / "classifier.json").is_file():
        raise DataError(f"{cls_dir} is not a finished classifier (no classifier.json)",
                        "run `lmlab filter classifier --out DIR` first")
    info = read_json(cls_dir / "classifier.json")
    tp, dp = load_file(cls_dir / "probe.safetensors"), load_file(cls_dir / "doc_probe.safetensors")
    return (info, Probe(tp["w"], float(tp["b"][0])), Probe(dp["w"], float(dp["b"][0])),
            load_bilm(info["fwd"], info["bwd"]))


@torch.no_grad()
def score_block(bilm, probe, doc_probe, tokens: np.ndarray, docs: list[tuple[int, int]], layer: int, seq_len: int,
                variant: str = "bilm") -> tuple[list[np.ndarray], list[float]]:
    """Per document [s, e) of `docs`: p(forget) of its tokens after the separator, and p(document is forget)
    (features as in training the probe: bilm.document_states)."""
    from lmlab.filtering.bilm import document_states

    probs, doc_p = [], []
    for f in document_states(bilm, tokens, docs, layer, variant, seq_len):
        f = f[1:]  # (T-1, F): the separator is not scored
        probs.append(probe.prob(f).numpy() if len(f) else np.zeros(0, np.float32))
        doc_p.append(float(doc_probe.prob(f.mean(0, keepdim=True))[0]) if len(f) else 0.0)
    return probs, doc_p


def label_dataset(cls_dir, data_dir, split: str = "train", block_docs: int = 256, progress: bool = True,
                  stop_after_blocks: int | None = None) -> dict:
    """Write DATA/{split}.side (p per token) and DATA/{split}.docflags.npy (p per document); resume a partial
    run of the same classifier. `stop_after_blocks` stops early (tests of the resume path)."""
    from lmlab.data.shards import open_shard, write_side
    from lmlab.data.tokenizer import Tokenizer
    from lmlab.errors import DataError
    from lmlab.filtering.classifier import shard_documents
    from lmlab.io import atomic_path, read_json, write_json
    from lmlab.progress import track

    cls_dir, data_dir = Path(cls_dir), Path(data_dir)
    info, probe, doc_probe, bilm = _load_classifier(cls_dir)
    tok = Tokenizer.load(data_dir)
    if tok.fingerprint() != info["tokenizer_sha256"]:
        raise DataError(f"the classifier {cls_dir.name} was built for another tokenizer than {data_dir.name}'s",
                        "label a dataset prepared with the biLM's tokenizer (or train a biLM on this dataset)")
    done = data_dir / f"{split}.label.json"
    if done.is_file() and (data_dir / f"{split}.side").is_file():  # finished by this classifier: nothing to do
        prev = read_json(done)
        if prev.get("classifier") == str(cls_dir) and prev.get("token_threshold") == info["threshold"]:
            return prev
    shard = open_shard(data_dir / f"{split}.bin")
    tokens = np.asarray(shard.tokens)
    docs = shard_documents(tokens, tok.eot_id)
    part, state_path = data_dir / f".{split}.side.partial", data_dir / f".{split}.label.json"
    key = {"classifier": str(cls_dir.resolve()), "threshold": info["threshold"], "n_tokens": int(len(tokens))}
    state = read_json(state_path) if state_path.is_file() else {}
    if state.get("key") != key or not part.is_file():
        np.lib.format.open_memmap(part, mode="w+", dtype=np.float32, shape=(len(tokens),)).flush()
        state = {"key": key, "docs_done": 0, "doc_p": []}
    p = np.load(part, mmap_mode="r+")
    starts = range(state["docs_done"], len(docs), block_docs)
    for blocks, b0 in enumerate(track(starts, progress, f"labelling {split}.bin ({block_docs} documents a step)")):
        if stop_after_blocks is not None and blocks >= stop_after_blocks:
            return {"done": False, "docs_done": state["docs_done"], "n_docs": len(docs)}
        block = docs[b0:b0 + block_docs]
        probs, doc_p = score_block(bilm, probe, doc_probe, tokens, block, info["layer"], info["seq_len"])
        for (s, e), q, dp in zip(block, probs, doc_p):
            p[s + 1:e], p[s] = q, 0.0
            state["doc_p"].append(dp)
        p.flush()
        state["docs_done"] = min(b0 + block_docs, len(docs))
        write_json(state_path, state)  # after the scores are on disk: a kill here redoes at most one block
    if docs and docs[0][0] > 0:
        p[:docs[0][0]] = 0.0  # tokens before the first separator (none in lmlab datasets)
    write_side(data_dir / f"{split}.bin", np.asarray(p))
    doc_p = np.asarray(state["doc_p"], dtype=np.float32)
    with atomic_path(data_dir / f"{split}.docflags.npy") as tmp, open(tmp, "wb") as f:
        np.save(f, doc_p)
    summary = {"split": split, "n_tokens": int(len(tokens)), "n_docs": len(docs), "classifier": str(cls_dir),
               "token_threshold": info["threshold"], "doc_threshold": info["doc"]["threshold"],
               "flagged_token_rate": float((np.asarray(p) >= info["threshold"]).mean()),
               "flagged_doc_rate": float((doc_p >= info["doc"]["threshold"]).mean()) if len(doc_p) else 0.0}
    write_json(data_dir / f"{split}.label.json", summary)
    part.unlink(missing_ok=True)
    state_path.unlink(missing_ok=True)
    return summary

"""Corpus -> tokenizer -> token shards: the dataset directory `lmlab lm train --data DIR` reads.

DIR/
  tokenizer.json      byte-level BPE trained on the train split (or a copy of a given tokenizer)
  train.bin           all train documents, each preceded by <|endoftext|> (acts as BOS), domains mixed
  val.<domain>.bin    held-out documents per domain (the per-domain eval sets)
  meta.json           resolved DataConfig, token counts per split/domain, special token ids
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmlab.errors import DataError
from lmlab.io import read_json, write_json


@dataclass
class DataConfig:
    corpus: str | None = None
    """Corpus: None/"embedded" for the embedded default, "embedded-pages" for its mixed-domain pages (the
    token-filtering corpus), or a local .txt/.jsonl/.parquet file or directory."""
    tokenizer: str | None = None
    """None: train a byte-level BPE on the train split; else a tokenizer.json, a directory or an HF tokenizer."""
    vocab_size: int = 8192
    """Vocabulary size of a newly trained BPE (specials included)."""
    tokenizer_train_chars: int = 20_000_000
    """Characters of train text used to fit the BPE (a prefix of the shuffled train split)."""
    max_train_tokens: int | None = None
    """Stop tokenising train documents after this many tokens (None: all)."""
    max_val_tokens: int = 200_000
    """Per-domain cap on held-out tokens."""
    domains: list[str] | None = field(default=None)
    """Restrict to these domains (None: all)."""


def prepare_dataset(cfg: DataConfig, out: str | Path, progress: bool = True) -> Path:
    """Build (or reuse, when meta.json matches cfg) a dataset directory. Returns its path."""
    from dataclasses import asdict

    out = Path(out)
    meta_path = out / "meta.json"
    if meta_path.is_file() and read_json(meta_path).get("config") == asdict(cfg):
        return out
    domains = _domains(cfg)  # before anything is written: a corpus with nothing held out fails here
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        tok = _tokenizer(cfg, out)
        counts = {"train": _encode_split(cfg, tok, "train", out / "train.bin", cfg.max_train_tokens, progress)}
        counts["val"] = {}
        for domain in domains:
            n = _encode_split(cfg, tok, "val", out / f"val.{domain}.bin", cfg.max_val_tokens, progress, [domain])
            counts["val"][domain] = n[domain]
    except BaseException:
        if created:  # nothing half-written: a directory this call created goes again
            import shutil

            shutil.rmtree(out, ignore_errors=True)
        raise
    meta = {"config": asdict(cfg), "vocab_size": tok.vocab_size, "eot_id": tok.eot_id, "hidden_id": tok.hidden_id,
            "pad_id": tok.pad_id, "tokens": counts, "val_sets": sorted(counts["val"])}
    write_json(meta_path, meta)  # written last: its presence marks a complete dataset
    return out


def _domains(cfg: DataConfig) -> list[str]:
    """The held-out sets (one per domain): cfg.domains, or every domain with a held-out document. A domain
    without one is a DataError that says why (see `_no_heldout`)."""
    from lmlab.data.corpus import iter_documents

    seen: dict[str, None] = {}
    for doc in iter_documents(cfg.corpus, split="val", domains=cfg.domains):
        seen.setdefault(doc.domain)
    missing = [d for d in cfg.domains or [] if d not in seen]
    if not seen or missing:
        raise _no_heldout(cfg, missing)
    return list(cfg.domains) if cfg.domains else sorted(seen)


def _no_heldout(cfg: DataConfig, missing: list[str]) -> DataError:
    """Why the corpus (or some of its domains) has no held-out document, with the document count."""
    from lmlab.data.corpus import DOC_SEPARATOR, LOCAL_SUFFIXES, VAL_PER_10K, iter_documents

    which = f" for domain(s) {', '.join(missing)}" if missing else ""
    n = sum(1 for _ in iter_documents(cfg.corpus, split="train", domains=missing or cfg.domains))
    docs = f"{n} document{'s' if n != 1 else ''}"
    src = Path(cfg.corpus).expanduser() if cfg.corpus not in (None, "embedded") else None
    if src is not None and src.is_file() and src.suffix == ".txt" and n <= 1:
        import re

        paras = len([x for x in re.split(r"\n\s*\n", src.read_text(encoding="utf-8", errors="replace")) if x.strip()])
        return DataError(f"corpus {src.name} holds {docs} ({paras} paragraph{'s' if paras != 1 else ''} but no line "
                         f"holding only {DOC_SEPARATOR}, which is what separates documents in a .txt), so none can "
                         "be held out",
                         f"put a {DOC_SEPARATOR} line between its documents (~{VAL_PER_10K / 100:g}% of documents "
                         "are held out), or give a directory with train.txt and val.txt")
    if src is not None and src.is_dir():
        names = {p.name.split(".")[0] for p in src.rglob("*") if p.is_file() and p.suffix in LOCAL_SUFFIXES}
        if "train" in names and "val" not in names:
            return DataError(f"corpus directory {src.name} has train.* files but no val.* file",
                             "add a val.txt/.jsonl/.parquet beside them (or rename the files so that ~"
                             f"{VAL_PER_10K / 100:g}% of documents are held out by hash)")
        if "val" in names:
            return DataError(f"the val.* files of corpus directory {src.name} hold no documents{which}",
                             "add held-out documents to them")
    return DataError(f"the corpus has no held-out documents{which}: {docs} in the train split, and a hash of "
                     f"each document's id holds out only ~{VAL_PER_10K / 100:g}%",
                     "give a larger corpus (about 100 documents or more) or a val.* file beside a train.* file")


def _tokenizer(cfg: DataConfig, out: Path):
    from lmlab.data.corpus import iter_documents
    from lmlab.data.tokenizer import Tokenizer, train_tokenizer

    path = out / "tokenizer.json"
    if cfg.tokenizer is not None:
        tok = Tokenizer.load(cfg.tokenizer)
        tok.save(out)
        return Tokenizer.load(out)

    def texts():
        n = 0
        for doc in iter_documents(cfg.corpus, split="train", domains=cfg.domains):
            yield doc.text
            n += len(doc.text)
            if n >= cfg.tokenizer_train_chars:
                return

    train_tokenizer(texts(), path, vocab_size=cfg.vocab_size)
    return Tokenizer.load(path)


def _encode_split(cfg, tok, split: str, path: Path, limit: int | None, progress: bool,
                  domains: list[str] | None = None) -> dict[str, int]:
    """Tokenise documents in batches, prefix each with <|endoftext|>, write one shard (cut at exactly
    `limit` tokens). Returns the number of tokens per domain that were written."""
    from rich.progress import Progress

    from lmlab.data.corpus import iter_documents
    from lmlab.data.shards import write_shard

    parts, per_domain, total = [], {}, 0
    limit = limit if limit is not None else float("inf")
    batch: list = []
    docs = iter_documents(cfg.corpus, split=split, domains=domains or cfg.domains)
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task(f"tokenising {path.name}", total=None if limit == float("inf") else limit)
        for doc in _chain_end(docs):
            if doc is not None:
                batch.append(doc)
            if len(batch) < 256 and doc is not None:
                continue
            for d, ids in zip(batch, tok.encode_batch([d.text for d in batch])):
                ids = [tok.eot_id, *ids][: int(min(limit - total, len(ids) + 1))]
                parts.append(np.asarray(ids, dtype=np.int64))
                per_domain[d.domain] = per_domain.get(d.domain, 0) + len(ids)
                total += len(ids)
                if total >= limit:
                    break
            bar.update(task, completed=total)
            batch = []
            if total >= limit:
                break
    if total == 0:
        raise DataError(f"no {split} documents for {domains or 'any domain'}", "check the corpus and --domains")
    write_shard(path, np.concatenate(parts), tok.vocab_size)
    return per_domain


def _chain_end(it):
    """Yield the items of `it`, then one None (flushes the last partial batch)."""
    yield from it
    yield None


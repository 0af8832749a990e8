"""`embedded-pages`: mixed-domain pages built from the embedded corpus, for token-level data filtering (Rathi &
Radford 2026; issue 16).

One dictionary entry per document makes a medical document medical through and through, so document filtering
would remove exactly the medical tokens and token filtering could not differ from it. Web pages mix topics;
this corpus does too:

- every GCIDE entry of `embedded-v1` gets a domain: ``medical`` (v1's rule, :data:`corpus.MEDICAL_RE`),
  ``biology`` — the retain domain close to the forget domain, as the paper keeps biology while removing medicine —
  when a subject label matches :data:`BIOLOGY_RE` ("(Zoöl.)", "(Bot.)", "(Biol.)" and variants) and it is not
  medical, else ``general``;
- ``train``: consecutive train entries in dictionary order (the order of their offsets in gcide.dict) are joined,
  one blank line apart, into pages of at least :data:`PAGE_CHARS` characters; each page records its entries as
  character spans, ``spans = [[start, end, domain], ...]``, and its ``domain`` is the one with most characters;
- ``val``: the held-out entries (:func:`is_heldout`, 8% of entries by a hash of the id — more than v1's 2%, so the
  small medical domain gets a usable forget set), one document each: pure per-domain evaluation sets;
- the Python documentation documents keep v1's documents and split (domain ``python``).

Built from the cached `embedded-v1` build (no new download) into ``<cache>/corpus/embedded-pages-v1``, under a
temporary name renamed into place; the manifest records :data:`PAGES_VERSION` and the v1 files' sha256, so a
build made by other code or from another v1 build is rebuilt, not reused. The directory has the layout of a
local corpus (train.jsonl / val.jsonl), so `iter_documents` reads it — and a user's own JSONL corpus with a
``spans`` field per line works the same way.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

PAGES_NAME = "embedded-pages-v1"
PAGES_VERSION = 1
"""Bump when the page rule changes: cached builds of another version are rebuilt."""
PAGE_CHARS = 2000
"""A page closes at the first entry boundary at or after this many characters."""
HELDOUT_PER_10K = 800
"""Held-out entries per 10,000 (by sha1 of the entry id)."""
DOMAINS = ("general", "medical", "biology", "python")
BIOLOGY_RE = re.compile(r"\((Zo[öo]l|Bot|Biol)[^)]{0,25}\)")


def is_heldout(doc_id: str) -> bool:
    """8% of entries, by a stable hash of the id (never the same bytes as corpus.is_val's 2% rule)."""
    h = int.from_bytes(hashlib.sha1(f"pages:{doc_id}".encode()).digest()[:4], "big")
    return h % 10_000 < HELDOUT_PER_10K


def entry_domain(domain_v1: str, text: str) -> str:
    """An entry's domain in the pages corpus: v1's medical / python stay; general splits into biology / general."""
    return "biology" if domain_v1 == "general" and BIOLOGY_RE.search(text) else domain_v1


def ensure_pages_corpus(force: bool = False) -> Path:
    """The pages corpus directory, built first from the embedded corpus if missing, stale or `force`."""
    from lmlab.data.corpus import cache_root, ensure_embedded_corpus
    from lmlab.io import build_dir

    src = ensure_embedded_corpus()
    key = _source_key(src)
    return build_dir(cache_root() / "corpus" / PAGES_NAME, lambda tmp: _build(src, tmp, key),
                     lambda path: _is_current(path, key), force)


def _source_key(src: Path) -> dict:
    splits = json.loads((src / "manifest.json").read_text())["splits"]
    return {"pages_version": PAGES_VERSION, "source_sha256": {k: v["sha256"] for k, v in sorted(splits.items())}}


def _is_current(path: Path, key: dict) -> bool:
    try:
        return json.loads((path / "manifest.json").read_text())["build"] == key
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _entries(src: Path) -> tuple[list[dict], list[dict], dict[str, list[dict]]]:
    """(GCIDE entries in dictionary order with their pages-corpus domain, held-out ones, python docs by split)."""
    gcide, python = [], {"train": [], "val": []}
    for split in ("train", "val"):
        with open(src / f"{split}.jsonl", encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                if d["domain"] == "python":
                    python[split].append(d)
                else:
                    gcide.append({**d, "domain": entry_domain(d["domain"], d["text"])})
    gcide.sort(key=lambda d: int(d["id"].split(":")[1]))  # ids are gcide:<offset>:<headword>
    held = [d for d in gcide if is_heldout(d["id"])]
    return [d for d in gcide if not is_heldout(d["id"])], held, python


def make_pages(entries: list[dict], page_chars: int = PAGE_CHARS) -> list[dict]:
    """Join consecutive entries into pages (a blank line apart) of >= page_chars characters (the last may be
    shorter); each page: id, domain (most characters), text, spans [[start, end, domain], ...]."""
    pages, cur = [], []

    def close():
        text, spans, pos = [], [], 0
        for e in cur:
            spans.append([pos, pos + len(e["text"]), e["domain"]])
            text.append(e["text"])
            pos += len(e["text"]) + 2
        chars: dict[str, int] = {}
        for s, t, dom in spans:
            chars[dom] = chars.get(dom, 0) + t - s
        pages.append({"id": f"page:{cur[0]['id'].split(':')[1]}", "domain": max(chars, key=chars.get),
                      "text": "\n\n".join(text), "spans": spans})

    size = 0
    for e in entries:
        cur.append(e)
        size += len(e["text"]) + 2
        if size >= page_chars:
            close()
            cur, size = [], 0
    if cur:
        close()
    return pages


def _build(src: Path, out: Path, key: dict) -> None:
    import random

    from lmlab.io import write_json

    train_entries, held, python = _entries(src)
    splits = {"train": make_pages(train_entries) + python["train"],
              "val": [{**d, "spans": [[0, len(d["text"]), d["domain"]]]} for d in held] + python["val"]}
    counts = {}
    for split, docs in splits.items():
        random.Random(1234).shuffle(docs)  # any prefix mixes pages and python documents
        with open(out / f"{split}.jsonl", "w", encoding="utf-8") as f:
            for d in docs:
                f.write(json.dumps({k: d[k] for k in ("id", "domain", "text", "spans") if k in d},
                                   ensure_ascii=False) + "\n")
        counts[split] = _chars_by_domain(docs)
    write_json(out / "manifest.json", {"name": PAGES_NAME, "domains": list(DOMAINS), "chars": counts,
                                       "page_chars": PAGE_CHARS, "heldout_per_10k": HELDOUT_PER_10K,
                                       "biology_regex": BIOLOGY_RE.pattern, "build": key})


def _chars_by_domain(docs: list[dict]) -> dict:
    """Characters per domain counted over entry spans (a page's text between entries not counted)."""
    out: dict[str, int] = {}
    for d in docs:
        for s, e, dom in d.get("spans") or [[0, len(d["text"]), d["domain"]]]:
            out[dom] = out.get(dom, 0) + e - s
    return out

"""The `embedded-pages` corpus (mixed-domain pages with entry spans, a biology retain domain) and span-carrying
local JSONL corpora."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from lmlab.data import pages as P
from lmlab.data.corpus import iter_documents
from lmlab.errors import DataError


@pytest.fixture(scope="module")
def built():
    root = P.ensure_pages_corpus()
    return root, {s: list(iter_documents("embedded-pages", s)) for s in ("train", "val")}


def test_make_pages_spans_cover_each_entry_exactly():
    entries = [{"id": f"gcide:{i}:w{i}", "domain": dom, "text": t} for i, (dom, t) in enumerate(
        [("general", "a" * 900), ("medical", "b" * 700), ("general", "c" * 500), ("biology", "d" * 2500),
         ("medical", "e" * 10)])]
    pages = P.make_pages(entries, page_chars=2000)
    assert len(pages) == 3 and [len(p["spans"]) for p in pages] == [3, 1, 1]
    for p in pages:
        for s, e, dom in p["spans"]:
            src = next(x for x in entries if x["text"] == p["text"][s:e])
            assert src["domain"] == dom
    assert pages[0]["text"] == "a" * 900 + "\n\n" + "b" * 700 + "\n\n" + "c" * 500
    assert pages[0]["domain"] == "general" and pages[1]["domain"] == "biology" and pages[2]["domain"] == "medical"
    assert pages[0]["id"] == "page:0"


def test_biology_is_its_own_domain_but_medical_wins():
    assert P.entry_domain("general", "Ant, n. (Zoöl.) An insect") == "biology"
    assert P.entry_domain("general", "Oak, n. (Bot.) A tree") == "biology"
    assert P.entry_domain("medical", "Liver, n. (Anat.) (Zoöl.) A gland") == "medical"
    assert P.entry_domain("general", "Bottle, n. A vessel") == "general"


def test_pages_corpus_mixes_domains_and_holds_out_pure_entries(built):
    root, docs = built
    train = [d for d in docs["train"] if d.domain != "python"]
    assert all(d.spans and d.text[d.spans[0][0]:d.spans[0][1]] for d in train)
    mixed = sum(len({s[2] for s in d.spans}) > 1 for d in train) / len(train)
    with_medical = sum(any(s[2] == "medical" for s in d.spans) for d in train) / len(train)
    assert mixed > 0.5 and 0.1 < with_medical < 0.5  # medical entries are scattered over many mostly-other pages
    val = Counter(d.domain for d in docs["val"])
    assert set(val) == set(P.DOMAINS) and val["medical"] > 300 and val["biology"] > 600
    assert all(len(d.spans) == 1 and d.spans[0][2] == d.domain for d in docs["val"] if d.domain != "python")
    held = {d.id for d in docs["val"]}
    entry_ids = {f"gcide:{d.id.split(':')[1]}" for d in train}
    assert not any(f"gcide:{i.split(':')[1]}" in entry_ids for i in held if i.startswith("gcide:"))
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["build"]["pages_version"] == P.PAGES_VERSION
    assert sum(manifest["chars"]["train"].values()) > 30_000_000


def test_a_stale_build_is_rebuilt(built, monkeypatch):
    root, _ = built
    manifest = json.loads((root / "manifest.json").read_text())
    monkeypatch.setattr(P, "PAGES_VERSION", P.PAGES_VERSION + 1)
    assert not P._is_current(root, {**manifest["build"], "pages_version": P.PAGES_VERSION})
    assert P._is_current(root, manifest["build"])


def test_local_jsonl_spans_are_read_and_checked(tmp_path):
    f = tmp_path / "c.jsonl"
    f.write_text(json.dumps({"text": "fever and a song", "domain": "general", "spans": [[0, 5, "medical"]]}) + "\n")
    (d,) = list(iter_documents(f, "train")) or list(iter_documents(f, "val"))
    assert d.spans == ((0, 5, "medical"),)
    f.write_text(json.dumps({"text": "short", "spans": [[0, 50, "medical"]]}) + "\n")
    with pytest.raises(DataError, match="0 <= start <= end <= 5"):
        list(iter_documents(f, "train"))
    with pytest.raises(DataError, match="unknown domain"):
        iter_documents("embedded-pages", "train", ["law"])

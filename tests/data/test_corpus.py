"""The embedded corpus (built once into the user's cache, then reused) and local corpora."""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from lmlab.data import corpus
from lmlab.data.corpus import DOMAINS, MEDICAL_RE, Doc, ensure_embedded_corpus, is_val, iter_documents
from lmlab.errors import DataError


@pytest.fixture(scope="module")
def embedded() -> Path:
    return ensure_embedded_corpus(progress=False)


@pytest.fixture(scope="module")
def docs(embedded) -> dict[str, list[Doc]]:
    return {split: list(iter_documents(split=split)) for split in ("train", "val")}


# --- embedded corpus --------------------------------------------------------------------------------------


def test_embedded_corpus_files_and_manifest(embedded):
    manifest = corpus.corpus_manifest()
    assert {p.name for p in embedded.iterdir()} >= {"train.jsonl", "val.jsonl", "manifest.json"}
    assert set(manifest["domains"]) == set(DOMAINS)
    assert {s["package"] for s in manifest["sources"]} == {"dict-gcide", "python3.11-doc"}
    assert all(s["version"] and s["licence"] for s in manifest["sources"])
    for split in ("train", "val"):
        data = (embedded / f"{split}.jsonl").read_bytes()
        assert hashlib.sha256(data).hexdigest() == manifest["splits"][split]["sha256"]
    # A second call finds the finished build and returns at once.
    assert ensure_embedded_corpus(progress=False) == embedded


def test_all_domains_in_both_splits_and_counts_match_manifest(docs):
    manifest = corpus.corpus_manifest()
    for split, items in docs.items():
        counts = Counter(d.domain for d in items)
        assert set(counts) == set(DOMAINS), split
        for dom in DOMAINS:
            assert counts[dom] == manifest["domains"][dom][split]["docs"]
    n = {dom: sum(v["docs"] for v in manifest["domains"][dom].values()) for dom in DOMAINS}
    assert 4_000 < n["medical"] < 7_000  # environment.md: ~5.5k medical GCIDE entries
    assert n["general"] > 100_000 and n["python"] > 3_000


def test_medical_label_follows_the_regex(docs):
    everything = docs["train"] + docs["val"]
    for d in everything:
        if d.domain == "medical":
            assert MEDICAL_RE.search(d.text), d.id
        elif d.domain == "general":
            assert not MEDICAL_RE.search(d.text), d.id
        else:
            assert d.id.startswith("python:")
    anat = [d for d in everything if "(Anat.)" in d.text or "(Med.)" in d.text]
    assert anat and all(d.domain == "medical" for d in anat)
    abdomen = [d for d in everything if d.text.startswith("Abdomen, n.")]
    assert abdomen and abdomen[0].domain == "medical" and "belly" in abdomen[0].text


def test_gcide_text_is_clean(docs):
    sample = [d for d in docs["train"][:5000] if d.domain != "python"]
    text = "\n".join(d.text for d in sample)
    assert "[1913 Webster]" not in text and "[WordNet 1.5]" not in text
    assert text.count("\\") < len(sample) // 100  # pronunciations between backslashes are removed


def test_python_docs_are_paragraph_chunks(docs):
    py = [d for d in docs["train"] if d.domain == "python"]
    lengths = sorted(len(d.text) for d in py)
    median = lengths[len(lengths) // 2]
    assert 300 <= median <= 3000
    assert sum(300 <= n <= 3300 for n in lengths) / len(lengths) > 0.9
    assert not any(".. index::" in d.text for d in py)


def test_val_and_train_are_disjoint_and_follow_the_hash_rule(docs):
    train_ids = {d.id for d in docs["train"]}
    val_ids = {d.id for d in docs["val"]}
    assert len(train_ids) == len(docs["train"]) and len(val_ids) == len(docs["val"])  # ids are unique
    assert not train_ids & val_ids
    assert all(is_val(i) for i in val_ids) and not any(is_val(i) for i in list(train_ids)[:20_000])
    assert 0.015 < len(val_ids) / (len(val_ids) + len(train_ids)) < 0.025


def test_train_prefix_mixes_domains(docs):
    assert set(d.domain for d in docs["train"][:3000]) == set(DOMAINS)


def test_split_rule_is_stable_and_about_two_percent():
    # sha1 of the id, not Python's salted hash(): the same on every run and machine.
    ids = [f"doc-{i}" for i in range(50_000)]
    frac = sum(map(is_val, ids)) / len(ids)
    assert 0.017 < frac < 0.023
    def by_hand(doc_id: str) -> bool:
        return int.from_bytes(hashlib.sha1(doc_id.encode()).digest()[:4], "big") % 10_000 < 200

    assert [is_val(i) for i in ids[:500]] == [by_hand(i) for i in ids[:500]]


@pytest.mark.slow  # a full second build (~10 s); test_split_rule_* covers the split rule in the default suite
def test_rebuild_is_deterministic(embedded, tmp_path, monkeypatch):
    debs = os.environ.get("LMLAB_DEBS") or str(corpus.cache_root() / "debs")
    reference = corpus.corpus_manifest()
    monkeypatch.setenv("LMLAB_DEBS", debs)
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path))
    rebuilt = ensure_embedded_corpus(progress=False)
    assert rebuilt.is_relative_to(tmp_path)
    manifest = json.loads((rebuilt / "manifest.json").read_text())
    assert manifest["splits"] == reference["splits"] and manifest["domains"] == reference["domains"]
    assert not list(tmp_path.glob("corpus/*.tmp-*"))  # no build leftovers


def test_gcide_cleanup_unit():
    entry = ('Abdomen \\Ab*do"men\\, n. [L. abdomen: cf. F. abdomen.]\n'
             "   1. (Anat.) The belly, or that part of the body between the\n"
             "      thorax and the pelvis.\n      [1913 Webster]\n\n"
             "   2. (Zool.) The posterior section of the body. Herm[ae]; M[\"u]ller.\n"
             "      [WordNet 1.5 +PJC]\n")
    text = corpus._clean_gcide(entry)
    assert text == ("Abdomen, n. [L. abdomen: cf. F. abdomen.] 1. (Anat.) The belly, or that part of the "
                    "body between the thorax and the pelvis.\n"
                    "2. (Zool.) The posterior section of the body. Hermæ; Müller.")


def test_rst_split_keeps_every_paragraph_and_cuts_at_headings():
    body = "word " * 59 + "end."
    paras = [f"Section {i}\n{'=' * 10}" if i % 4 == 0 else f"Paragraph {i}. {body}" for i in range(40)]
    chunks = corpus._split_rst("\n\n".join(paras), 300, 3000)
    assert "\n\n".join(chunks) == "\n\n".join(paras)
    assert all(300 <= len(c) <= 3300 for c in chunks)
    assert all(c.startswith("Section") for c in chunks[1:])


def test_deb_extraction_without_dpkg(embedded, tmp_path, monkeypatch):
    """Without dpkg-deb (e.g. macOS with $LMLAB_DEBS) the .deb is unpacked by the pure-Python reader."""
    debs = corpus._find_debs(Path(os.environ.get("LMLAB_DEBS") or corpus.cache_root() / "debs"))
    if debs is None:
        pytest.skip("no cached .deb files")
    monkeypatch.setattr(corpus.shutil, "which", lambda name: None)
    corpus._extract_deb(debs["dict-gcide"], tmp_path)
    assert (tmp_path / "usr/share/dictd/gcide.index").stat().st_size > 1_000_000


# --- local corpora ----------------------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def test_local_jsonl(tmp_path):
    rows = [{"text": f"document {i}", "domain": "a" if i % 2 else "b"} for i in range(300)]
    path = _write_jsonl(tmp_path / "c.jsonl", rows + [{"text": "no domain", "id": "x"}])
    train = list(iter_documents(path))
    val = list(iter_documents(path, split="val"))
    assert len(train) + len(val) == 301 and not {d.id for d in train} & {d.id for d in val}
    by_id = {d.id: d for d in train + val}
    assert by_id["c.jsonl:1"] == Doc("c.jsonl:1", "b", "document 0")  # default id: <file>:<line>
    assert by_id["x"].domain == "default"
    only_a = list(iter_documents(path, split="train", domains=["a"]))
    assert only_a and all(d.domain == "a" for d in only_a)
    with pytest.raises(DataError, match="available domains: a, b, default"):
        list(iter_documents(path, domains=["zzz"]))


def test_local_txt_with_separators_and_single_doc(tmp_path):
    multi = tmp_path / "notes.txt"
    multi.write_text("\n<|endoftext|>\n".join(f"note {i}\nsecond line" for i in range(100)))
    docs = list(iter_documents(multi)) + list(iter_documents(multi, split="val"))
    assert len(docs) == 100 and {d.domain for d in docs} == {"notes"}
    assert sorted(d.text for d in docs)[0] == "note 0\nsecond line"
    single = tmp_path / "book.txt"
    single.write_text("One long book.\n\nWith paragraphs.\n")
    assert [d.text for d in iter_documents(single)] == ["One long book.\n\nWith paragraphs."]
    assert list(iter_documents(single, split="val")) == []


def test_local_directory_with_explicit_splits(tmp_path):
    _write_jsonl(tmp_path / "train.jsonl", [{"text": f"t{i}"} for i in range(50)])
    _write_jsonl(tmp_path / "val.jsonl", [{"text": "v0"}, {"text": "v1"}])
    assert [d.text for d in iter_documents(tmp_path, split="val")] == ["v0", "v1"]
    assert len(list(iter_documents(tmp_path))) == 50


def test_local_directory_of_mixed_files(tmp_path):
    _write_jsonl(tmp_path / "a.jsonl", [{"text": f"a{i}", "domain": "x"} for i in range(100)])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("<|endoftext|>\n".join(f"b{i}\n" for i in range(100)))
    (tmp_path / "ignored.csv").write_text("text\nnot read\n")
    docs = list(iter_documents(tmp_path)) + list(iter_documents(tmp_path, split="val"))
    assert len(docs) == 200 and {d.domain for d in docs} == {"x", "b"}


def test_local_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"text": [f"row {i}" for i in range(60)], "domain": ["p"] * 60})
    pq.write_table(table, tmp_path / "d.parquet")
    path = tmp_path / "d.parquet"
    docs = list(iter_documents(path)) + list(iter_documents(path, split="val"))
    assert sorted(d.text for d in docs) == sorted(f"row {i}" for i in range(60))
    assert {d.domain for d in docs} == {"p"}


def test_malformed_jsonl_names_the_line(tmp_path):
    rows = [{"text": "ok"}, {"text": "ok too"}, "{not json", {"text": "x"}]
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError, match=r"bad\.jsonl:3 is not valid JSON") as e:
        list(iter_documents(path))
    assert "fix or remove that line" in str(e.value)
    path = _write_jsonl(tmp_path / "notext.jsonl", [{"body": "no text key"}])
    with pytest.raises(DataError, match=r"notext\.jsonl:1 has no string \"text\" field"):
        list(iter_documents(path))


def test_bad_arguments(tmp_path):
    with pytest.raises(DataError, match="does not exist — pass an existing .txt/.jsonl/.parquet"):
        iter_documents(tmp_path / "missing.jsonl")  # raised at call time, not on first next()
    with pytest.raises(DataError, match="available domains: general, medical, python"):
        iter_documents(domains=["legal"])
    with pytest.raises(DataError, match="unknown split"):
        iter_documents(split="test")
    (tmp_path / "x.csv").write_text("a\n")
    with pytest.raises(DataError, match="unsupported corpus file"):
        iter_documents(tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="holds no"):
        iter_documents(tmp_path / "empty")


def test_cache_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path))
    assert corpus.cache_root() == tmp_path


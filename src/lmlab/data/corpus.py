"""Corpora: the embedded default corpus (built on the user's machine from Debian packages) and local files.

The embedded corpus `embedded-v1` has three domains, each document labelled:

- ``general`` and ``medical``: entries of GCIDE, the GNU Collaborative International Dictionary of English
  (Debian package ``dict-gcide``; licence GPL-2+; derived from Webster's Revised Unabridged Dictionary of
  1913, public domain, and WordNet 1.5, Princeton WordNet licence). An entry is ``medical`` when it carries a
  subject label matching :data:`MEDICAL_RE` — ``(Med.)``, ``(Anat.)``, ``(Physiol.)``, ``(Pathol.)``,
  ``(Surg.)``, ``(Pharm.)`` and variants — else ``general``.
- ``python``: the reStructuredText sources of the Python 3.11 documentation (Debian package
  ``python3.11-doc``; PSF licence), cut into 300–3000 character documents at section/paragraph boundaries.

Nothing is downloaded from a hub and nothing of the corpus is committed to the repository: the two ``.deb``
files come from the system's Debian archive (``apt-get download``) or from ``$LMLAB_DEBS``, are unpacked
without root (``dpkg-deb -x``) and parsed into ``<cache>/corpus/embedded-v1/{train,val}.jsonl`` plus a
``manifest.json``. The directory is built under a temporary name and renamed into place, so it is either
complete or absent.

Local corpora (``.txt``, ``.jsonl``, ``.parquet`` files or a directory of them) go through the same
:func:`iter_documents` interface; the held-out split of a local corpus uses the same hash rule as the
embedded one (:func:`is_val`) unless the directory provides ``train.*``/``val.*`` files itself.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

from lmlab.errors import DataError
from lmlab.io import read_json, write_json

DOMAINS = ("general", "medical", "python")
SPLITS = ("train", "val")
EMBEDDED_NAME = "embedded-v1"
LOCAL_SUFFIXES = (".txt", ".jsonl", ".parquet")
DOC_SEPARATOR = "<|endoftext|>"  # a .txt line holding only this separates documents

# An entry is medical if one of its subject labels is medical, e.g. "(Anat.)", "(Med.)", "(Physiol. Chem.)".
MEDICAL_RE = re.compile(r"\((Med|Anat|Physiol|Pathol|Surg|Pharm)[^)]{0,25}\)")
VAL_PER_10K = 200  # 2 % of documents (by hash of the id) are held out
SHUFFLE_SEED = 1234
PY_DOC_CHARS = (300, 3000)  # target size range of a python document
# Bump when parsing/cleaning changes: a cached build made by other code is then rebuilt, not silently reused.
PARSER_VERSION = 1

# Debian packages the embedded corpus is built from.
PACKAGES = {
    "dict-gcide": {"licence": "GPL-2+ (Webster 1913: public domain; WordNet 1.5: Princeton WordNet licence)",
                   "files": "usr/share/dictd/gcide.{dict.dz,index}", "domains": ["general", "medical"]},
    "python3.11-doc": {"licence": "PSF-2.0 (Python Software Foundation License)",
                       "files": "usr/share/doc/python3.11/html/_sources/**/*.rst.txt", "domains": ["python"]},
}


class Doc(NamedTuple):
    """One document: a stable id (also the key of the train/val hash rule), its domain label and its text."""

    id: str
    domain: str
    text: str
    spans: tuple | None = None
    """Domains of parts of the text, ((start, end, domain), ...) in characters, for documents that mix domains
    (the `embedded-pages` corpus; a JSONL line's optional "spans"); None: all of it is `domain`."""


def cache_root() -> Path:
    """`$LMLAB_CACHE` if set, else the platform's user cache dir for lmlab."""
    if env := os.environ.get("LMLAB_CACHE"):
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("lmlab"))


def is_val(doc_id: str) -> bool:
    """Held-out membership: a stable hash of the id, so it never changes between builds or machines."""
    h = int.from_bytes(hashlib.sha1(doc_id.encode("utf-8")).digest()[:4], "big")
    return h % 10_000 < VAL_PER_10K


# ----------------------------------------------------------------------------------------------------------
# Building the embedded corpus
# ----------------------------------------------------------------------------------------------------------


def ensure_embedded_corpus(force: bool = False, progress: bool = True) -> Path:
    """Return the embedded corpus directory, building it first if needed (or if `force`)."""
    from lmlab.io import build_dir

    return build_dir(cache_root() / "corpus" / EMBEDDED_NAME, lambda tmp: _build(tmp, progress), _is_current, force)


def _is_current(path: Path) -> bool:
    """A finished build (manifest present) made by this version of the parsers."""
    try:
        return json.loads((path / "manifest.json").read_text())["build"]["parser_version"] == PARSER_VERSION
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _build(out: Path, progress: bool) -> None:
    """Fetch, unpack and parse the two packages; write train/val JSONL and the manifest into `out`."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    t0 = time.time()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), disable=not progress) as bar:

        def phase(name: str):  # one bar per phase; returns the callback the parsers tick with
            task = bar.add_task(f"embedded corpus: {name}", total=None)
            return lambda n, total: bar.update(task, completed=n, total=total)

        fetched = phase("fetching .deb files")
        debs = _fetch_debs()
        fetched(1, 1)
        with tempfile.TemporaryDirectory(prefix="extract-", dir=out) as root:
            for deb in debs.values():
                _extract_deb(deb, Path(root))
            docs = list(_gcide_docs(Path(root), phase("parsing GCIDE entries")))
            docs += _python_docs(Path(root), phase("parsing Python doc pages"))
        tick = phase("writing train/val")
        splits = _write_splits(docs, out)
        tick(1, 1)
    built_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    manifest = {
        "name": EMBEDDED_NAME,
        "splits": splits,
        "domains": _domain_counts(docs),
        "sources": [{"package": p, "version": _deb_version(d), **PACKAGES[p]} for p, d in debs.items()],
        "build": {"parser_version": PARSER_VERSION, "shuffle_seed": SHUFFLE_SEED,
                  "val_rule": f"sha1(id)[:4 bytes] % 10000 < {VAL_PER_10K}",
                  "medical_regex": MEDICAL_RE.pattern, "python_doc_chars": list(PY_DOC_CHARS),
                  "seconds": round(time.time() - t0, 1), "built_at": built_at},
    }
    write_json(out / "manifest.json", manifest)  # written last: its presence marks a complete build


def _write_splits(docs: list[Doc], out: Path) -> dict:
    """Write val/train JSONL; train is shuffled (seeded) so that any prefix mixes the domains."""
    by_split: dict[str, list[Doc]] = {"train": [], "val": []}
    for d in docs:
        by_split["val" if is_val(d.id) else "train"].append(d)
    info = {}
    for split, items in by_split.items():
        random.Random(SHUFFLE_SEED).shuffle(items)
        path = out / f"{split}.jsonl"
        h = hashlib.sha256()
        with open(path, "w", encoding="utf-8") as f:
            for d in items:
                obj = {k: v for k, v in d._asdict().items() if v is not None}  # no "spans": v1 lines as before
                line = json.dumps(obj, ensure_ascii=False) + "\n"
                f.write(line)
                h.update(line.encode("utf-8"))
        info[split] = {"file": path.name, "docs": len(items), "chars": sum(len(d.text) for d in items),
                       "sha256": h.hexdigest()}
    return info


def _domain_counts(docs: list[Doc]) -> dict:
    counts = {dom: {s: {"docs": 0, "chars": 0} for s in SPLITS} for dom in DOMAINS}
    for d in docs:
        c = counts[d.domain]["val" if is_val(d.id) else "train"]
        c["docs"] += 1
        c["chars"] += len(d.text)
    return counts


# --- fetching and unpacking the Debian packages -----------------------------------------------------------


def _find_debs(folder: Path) -> dict[str, Path] | None:
    found = {p: sorted(folder.glob(f"{p}_*.deb")) for p in PACKAGES}
    return {p: files[-1] for p, files in found.items()} if all(found.values()) else None


def _fetch_debs() -> dict[str, Path]:
    """The .deb files: from $LMLAB_DEBS, else the cache, else `apt-get download` into the cache."""
    if (env := os.environ.get("LMLAB_DEBS")) and (debs := _find_debs(Path(env).expanduser())):
        return debs
    cache = cache_root() / "debs"
    if debs := _find_debs(cache):
        return debs
    cache.mkdir(parents=True, exist_ok=True)
    err = _apt_download(cache)
    # A fresh container often has no apt lists yet; as root we may refresh them and retry.
    if err and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True)
        err = _apt_download(cache)
    if debs := _find_debs(cache):
        return debs
    raise DataError(f"could not get the Debian packages {', '.join(PACKAGES)} ({err.strip()[-300:]})",
                    "run `apt-get download dict-gcide python3.11-doc` in some directory (after `apt-get "
                    "update` if needed) and set LMLAB_DEBS to it, or pass --corpus with a local corpus")


def _apt_download(dest: Path) -> str:
    """`apt-get download` into a scratch dir, then move the .debs in whole. Returns '' or an error text."""
    with tempfile.TemporaryDirectory(prefix="apt-", dir=dest) as tmp:
        try:
            r = subprocess.run(["apt-get", "download", *PACKAGES], cwd=tmp, capture_output=True, text=True)
        except FileNotFoundError:
            return "apt-get not found"
        for deb in Path(tmp).glob("*.deb"):
            os.replace(deb, dest / deb.name)
        return "" if r.returncode == 0 else (r.stderr or r.stdout or f"apt-get exit {r.returncode}")


def _extract_deb(deb: Path, dest: Path) -> None:
    """Unpack a .deb's data without root: `dpkg-deb -x`, or (no dpkg, e.g. macOS) a pure-Python ar reader."""
    if shutil.which("dpkg-deb"):
        r = subprocess.run(["dpkg-deb", "-x", str(deb), str(dest)], capture_output=True, text=True)
        if r.returncode != 0:
            raise DataError(f"cannot unpack {deb}: {r.stderr.strip()}",
                            "delete it so that it is downloaded again")
        return
    with open(deb, "rb") as f:
        if f.read(8) != b"!<arch>\n":
            raise DataError(f"{deb} is not a .deb archive", "delete it so that it is downloaded again")
        while header := f.read(60):
            name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
            if name.startswith("data.tar"):
                with tarfile.open(fileobj=io.BytesIO(f.read(size))) as tar:
                    tar.extractall(dest, filter="data")
                return
            f.seek(size + size % 2, os.SEEK_CUR)  # ar members are 2-byte aligned
    raise DataError(f"{deb} has no data.tar member", "delete it so that it is downloaded again")


def _deb_version(deb: Path) -> str:
    # Debian file names are <package>_<version>_<arch>.deb, with an epoch colon escaped as %3a.
    return deb.name.split("_")[1].replace("%3a", ":")


# --- GCIDE ------------------------------------------------------------------------------------------------

_B64 = {c: i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")}
# Provenance tags such as "[1913 Webster]", "[WordNet 1.5 +PJC]", "[Webster 1913 Suppl.]": not English text.
_SOURCE_TAG = re.compile(r"\[(?=[^\]]*(?:Webster|WordNet|PJC|Century|RHUD|RDH|MW10|\bCM\b|\bJG\b|\bAS\b))"
                         r"(?:\s*(?:1913|Webster|Suppl\.|WordNet|\d(?:\.\d)?|sense|PJC\.?|AS|RDH|RHUD|RP|"
                         r"MW10|Century|Dict\.,?|1906|CM|JG|PC|\+|&|#here)\s*)+\]")
# Pronunciations sit between backslashes, "\Ab*do\"men\", sometimes across a line break.
_PRONUNCIATION = re.compile(r"[ \t]*\\[^\\]{1,80}\\")
# GCIDE spells accented letters as bracket codes: ["u] ü, ['e] é, [=o] ō, [a^] ă, [ae] æ, [,c] ç, ...
_ACCENT = re.compile(r"\[([\"'`^~=])([a-zA-Z])\]|\[([a-zA-Z])\^\]|\[(ae|AE|oe|OE|,c|deg|eth)\]")
_COMBINING = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "=": "\u0304"}
_LIGATURE = {"ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", ",c": "ç", "deg": "°", "eth": "ð"}


def _b64(s: str) -> int:
    n = 0
    for c in s:
        n = n * 64 + _B64[c]
    return n


def _gcide_docs(root: Path, tick: Callable[[int, int], None]) -> Iterator[Doc]:
    """One document per dictionary entry, located through the dictd index (offset, length per headword)."""
    base = root / "usr/share/dictd"
    with gzip.open(base / "gcide.dict.dz") as f:  # dictzip is gzip-compatible
        raw = f.read()
    spans: dict[tuple[int, int], str] = {}
    for line in (base / "gcide.index").read_text(encoding="utf-8", errors="replace").splitlines():
        word, off, length = line.split("\t")
        if not word.startswith("00-"):  # 00-database-* entries hold the licence preamble, not definitions
            spans.setdefault((_b64(off), _b64(length)), word)  # several headwords can share one entry
    for i, ((off, length), word) in enumerate(sorted(spans.items())):
        chunk = raw[off: off + length]
        try:
            entry = chunk.decode("utf-8")
        except UnicodeDecodeError:  # a handful of entries carry stray cp1252 quotes
            entry = chunk.decode("cp1252", errors="replace")
        text = _clean_gcide(entry)
        if text:
            yield Doc(f"gcide:{off}:{word}", "medical" if MEDICAL_RE.search(text) else "general", text)
        if i % 5000 == 0 or i == len(spans) - 1:
            tick(i + 1, len(spans))


def _accent(m: re.Match) -> str:
    if m.group(4):
        return _LIGATURE[m.group(4)]
    letter, mark = (m.group(2), _COMBINING[m.group(1)]) if m.group(2) else (m.group(3), "\u0306")  # breve
    return unicodedata.normalize("NFC", letter + mark)


def _clean_gcide(entry: str) -> str:
    """Readable English: drop provenance tags, pronunciations and {} markup; unwrap hard-wrapped lines."""
    entry = _SOURCE_TAG.sub("", entry)
    entry = _PRONUNCIATION.sub("", entry).replace("{", "").replace("}", "")
    entry = _ACCENT.sub(_accent, entry)
    paragraphs = (" ".join(line.strip() for line in p.splitlines()) for p in re.split(r"\n\s*\n", entry))
    return "\n".join(p for p in (re.sub(r" {2,}", " ", p).strip() for p in paragraphs) if p)


# --- Python documentation ---------------------------------------------------------------------------------

# Directives whose whole block is navigation/metadata rather than prose.
_DROP_DIRECTIVE = re.compile(r"^(\s*)\.\. (?:index|toctree|highlight|moduleauthor|sectionauthor|testsetup|"
                             r"testcleanup|currentmodule|module|include|only|_[^:]*|\|[^|]*\|)::?(?:\s|$)")
# ".." comments: not a directive ("name::"), target ("_x:"), footnote ("[1]") or substitution ("|x|")
_COMMENT = re.compile(r"^(\s*)\.\.(?!\s+(?:[\w:-]+::|_|\[|\|))(?:\s.*)?$")
_ROLE = re.compile(r":(?:[\w-]+:)?([\w-]+):`([^`]+)`")
_LINK = re.compile(r"`([^`<]+?)\s*<[^`>]+>`__?|`([^`]+)`__?(?!\w)")
_HEADING_LINE = re.compile(r"^([=\-~^\"'*#+`:.])\1{2,}\s*$")


def _python_docs(root: Path, tick: Callable[[int, int], None]) -> list[Doc]:
    """The Python docs' reST sources, each page cut into documents at section/paragraph boundaries."""
    base = root / "usr/share/doc/python3.11/html/_sources"
    files = sorted(base.rglob("*.rst.txt"))
    if not files:
        raise DataError(f"no .rst.txt sources under {base}", "check the python3.11-doc package")
    docs = []
    for i, path in enumerate(files):
        name = path.relative_to(base).as_posix().removesuffix(".rst.txt")
        text = _clean_rst(path.read_text(encoding="utf-8", errors="replace"))
        chunks = _split_rst(text, *PY_DOC_CHARS)
        docs += [Doc(f"python:{name}#{k}", "python", chunk) for k, chunk in enumerate(chunks)]
        tick(i + 1, len(files))
    return docs


def _role(m: re.Match) -> str:
    role, body = m.group(1), m.group(2)
    body = re.sub(r"^(.*?)\s*<[^<>]+>$", r"\1", body, flags=re.S).lstrip("~!")  # `title <target>` -> title
    if role in ("pep", "rfc"):
        return f"{role.upper()} {body}"
    if role in ("issue", "gh"):
        return f"{'bpo' if role == 'issue' else 'gh'}-{body}"
    return body if role in ("ref", "doc", "term", "abbr", "dfn", "source", "title-reference") else f"`{body}`"


def _clean_rst(text: str) -> str:
    """Light reST cleanup: drop index/toctree/metadata blocks and comments; unwrap roles and links."""
    out, skip_indent = [], None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if skip_indent is not None and (not line.strip() or indent > skip_indent):
            continue  # still inside a dropped block
        skip_indent = None
        if m := (_DROP_DIRECTIVE.match(line) or _COMMENT.match(line)):
            skip_indent = len(m.group(1))
            continue
        if line.startswith("**Source code:**"):
            continue
        out.append(line)
    text = "\n".join(out)
    text = _ROLE.sub(_role, text)
    text = _LINK.sub(lambda m: m.group(1) or m.group(2), text)
    text = re.sub(r"\s?\[#[^\]]*\]_", "", text)  # footnote references
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    text = re.sub(r"(\S)::$", r"\1:", text, flags=re.M)  # "Example::" renders as "Example:"
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _is_heading(par: str) -> bool:
    lines = par.splitlines()
    # "Title\n=====" or "=====\nTitle\n=====" (a bare "=====" line is a transition, not a heading)
    return 2 <= len(lines) <= 3 and bool(_HEADING_LINE.match(lines[-1])) and not _HEADING_LINE.match(
        lines[-2])


def _split_rst(text: str, lo: int, hi: int) -> list[str]:
    """Pack paragraphs into documents of ~lo..hi chars, starting a new one at a heading when possible."""
    paras: list[str] = []
    for p in re.split(r"\n[ \t]*\n", text):
        p = p.rstrip()
        if not p.strip() or _HEADING_LINE.match(p.strip()):  # empty, or a bare "------" transition
            continue
        paras += _split_long(p, hi) if len(p) > hi else [p]
    docs: list[str] = []
    cur: list[str] = []
    size = 0
    for p in paras:
        if cur and size >= lo and (_is_heading(p) or size + len(p) > hi):
            # a heading left at the very end would be cut off from its section: carry it over
            carry = [cur.pop()] if len(cur) > 1 and _is_heading(cur[-1]) else []
            docs.append("\n\n".join(cur))
            cur, size = carry, sum(len(c) + 2 for c in carry)
        cur.append(p)
        size += len(p) + 2
    if cur:
        tail = "\n\n".join(cur)
        if docs and size < lo and len(docs[-1]) + size <= hi + lo:
            docs[-1] += "\n\n" + tail  # a short tail joins the previous document
        else:
            docs.append(tail)
    return [d for d in docs if len(d.strip()) >= 40]  # drop stubs (e.g. a lone ":orphan:")


def _split_long(par: str, hi: int) -> list[str]:
    """A paragraph longer than `hi` (big tables, long code blocks) is cut at line boundaries."""
    pieces, cur = [], ""
    for line in par.splitlines(keepends=True):
        if cur and len(cur) + len(line) > hi:
            pieces.append(cur.rstrip())
            cur = ""
        cur += line
    return pieces + [cur.rstrip()] if cur.strip() else pieces


# ----------------------------------------------------------------------------------------------------------
# Reading corpora
# ----------------------------------------------------------------------------------------------------------


def iter_documents(source: str | Path | None = None, split: str = "train",
                   domains: Sequence[str] | None = None) -> Iterator[Doc]:
    """Documents of a corpus split, optionally restricted to some domains.

    `source`: None or "embedded" (the embedded corpus, built on first use), "embedded-pages" (its mixed-domain
    pages, data/pages.py), or a local `.txt` / `.jsonl` / `.parquet` file or a directory of them. Arguments are
    checked now; documents are read lazily.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}", f"use one of {', '.join(SPLITS)}")
    wanted = set(domains) if domains else None
    if str(source) == "embedded-pages":
        from lmlab.data.pages import DOMAINS as PAGE_DOMAINS
        from lmlab.data.pages import ensure_pages_corpus

        if wanted and (bad := sorted(wanted - set(PAGE_DOMAINS))):
            raise DataError(f"unknown domain(s) {', '.join(bad)} in the embedded-pages corpus",
                            f"available domains: {', '.join(PAGE_DOMAINS)}")
        root = ensure_pages_corpus()
        return _iter_local(root, [root / f"{split}.jsonl"], None, wanted)
    if source is None or str(source) == "embedded":
        if wanted and (bad := sorted(wanted - set(DOMAINS))):
            raise DataError(f"unknown domain(s) {', '.join(bad)} in the embedded corpus",
                            f"available domains: {', '.join(DOMAINS)}")
        return _iter_embedded(ensure_embedded_corpus() / f"{split}.jsonl", wanted)
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"corpus path {path} does not exist",
                        "pass an existing .txt/.jsonl/.parquet file or directory, or omit --corpus for the "
                        "embedded corpus")
    files, by_hash = _local_files(path, split)
    return _iter_local(path, files, split if by_hash else None, wanted)


def _iter_embedded(path: Path, wanted: set[str] | None) -> Iterator[Doc]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            d = Doc(**json.loads(line))
            if wanted is None or d.domain in wanted:
                yield d


def _local_files(path: Path, split: str) -> tuple[list[Path], bool]:
    """Files to read, and whether the split must be decided by the hash rule (no train.*/val.* files)."""
    if path.is_file():
        if path.suffix not in LOCAL_SUFFIXES:
            raise DataError(f"unsupported corpus file {path}", f"use one of {', '.join(LOCAL_SUFFIXES)}")
        return [path], True
    files = sorted(p for p in path.rglob("*") if p.suffix in LOCAL_SUFFIXES and p.is_file())
    if not files:
        raise DataError(f"corpus directory {path} holds no {'/'.join(LOCAL_SUFFIXES)} files",
                        "add some, or point --corpus at another directory")
    named = [p for p in files if p.name.split(".")[0] in SPLITS]
    if named:  # the user split the corpus: take their files as they are
        return [p for p in named if p.name.split(".")[0] == split], False
    return files, True


def _iter_local(root: Path, files: list[Path], hash_split: str | None,
                wanted: set[str] | None) -> Iterator[Doc]:
    seen: set[str] = set()
    for path in files:
        name = path.name if root.is_file() else path.relative_to(root).as_posix()
        docs = _READERS[path.suffix](path, name)
        lone = False
        if hash_split and root.is_file() and path.suffix == ".txt":
            docs = list(docs)
            # A lone single-document file (a book, say) stays in train instead of risking a train split
            # with nothing in it when the hash happens to send its one document to val.
            lone = len(docs) == 1
        for d in docs:
            seen.add(d.domain)
            if hash_split and (False if lone else is_val(d.id)) != (hash_split == "val"):
                continue
            if wanted is None or d.domain in wanted:
                yield d
    # Which domains a local corpus has is only known once it has been read.
    if wanted and (missing := sorted(wanted - seen)):
        raise DataError(f"domain(s) {', '.join(missing)} not found in corpus {root}",
                        f"available domains: {', '.join(sorted(seen)) or '(none)'}")


def _read_txt(path: Path, name: str) -> Iterator[Doc]:
    """A .txt file: documents separated by lines holding only <|endoftext|>; domain = file stem."""
    text = path.read_text(encoding="utf-8", errors="replace")
    parts = re.split(rf"^[ \t]*{re.escape(DOC_SEPARATOR)}[ \t]*$", text, flags=re.M)
    domain = "default" if path.stem in SPLITS else path.stem
    for k, part in enumerate(parts):
        if part.strip():
            yield Doc(f"{name}:{k}", domain, part.strip("\n"))


def _read_jsonl(path: Path, name: str) -> Iterator[Doc]:
    """A .jsonl file: {"text": str, "domain"?: str, "id"?: str, "spans"?: [[start, end, domain], ...]} per line;
    a bad line is a DataError."""
    from lmlab.io import jsonl_objects

    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, obj in jsonl_objects(f, path, '{"text": "...", "domain": "..."}'):
            if not isinstance(obj.get("text"), str):
                raise DataError(f'{path}:{lineno} has no string "text" field',
                                'each line must be an object like {"text": "...", "domain": "..."}')
            spans = _spans(obj.get("spans"), len(obj["text"]), f"{path}:{lineno}")
            yield Doc(str(obj.get("id", f"{name}:{lineno}")), str(obj.get("domain", "default")), obj["text"], spans)


def _spans(raw, n: int, where: str) -> tuple | None:
    """A JSONL line's "spans" as ((start, end, domain), ...), checked: integer offsets within the text."""
    if raw is None:
        return None
    try:
        spans = tuple((int(s), int(e), str(dom)) for s, e, dom in raw)
    except (TypeError, ValueError):
        spans = None
    if spans is None or any(not 0 <= s <= e <= n for s, e, _ in spans):
        raise DataError(f'{where}: "spans" must be [[start, end, domain], ...] with 0 <= start <= end <= {n}',
                        "fix the spans or drop the field")
    return spans


def _read_parquet(path: Path, name: str) -> Iterator[Doc]:
    """A .parquet file with a `text` column (optional `domain`, `id`), read through HF datasets."""
    from datasets import load_dataset

    # streaming=True reads the file directly instead of copying it into the datasets cache
    rows = load_dataset("parquet", data_files=str(path), split="train", streaming=True)
    for i, row in enumerate(rows):
        if not isinstance(row.get("text"), str):
            raise DataError(f'{path} row {i} has no string "text" column',
                            "add a text column (and optionally a domain column)")
        yield Doc(str(row.get("id") or f"{name}:{i}"), str(row.get("domain") or "default"), row["text"])


_READERS = {".txt": _read_txt, ".jsonl": _read_jsonl, ".parquet": _read_parquet}


def corpus_manifest(source: str | Path | None = None) -> dict:
    """The embedded corpus's manifest.json; for a local source, a small provenance record of its files."""
    if source is None or str(source) == "embedded":
        return read_json(ensure_embedded_corpus() / "manifest.json")
    if str(source) == "embedded-pages":
        from lmlab.data.pages import ensure_pages_corpus

        return read_json(ensure_pages_corpus() / "manifest.json")
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"corpus path {path} does not exist",
                        "pass an existing .txt/.jsonl/.parquet file or directory, or omit --corpus for the "
                        "embedded corpus")
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in LOCAL_SUFFIXES)
    return {"name": str(path), "files": [{"path": str(p), "bytes": p.stat().st_size} for p in files]}

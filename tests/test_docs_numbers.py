"""Numbers a reader can trace (issue 14): every number in a results table of docs/results.md and
docs/benchmarks.md must be found in the committed JSON/CSV files the table cites.

Convention (write it directly above the table; blank lines between are allowed):

    <!-- source: docs/results/glp/eval.json docs/results/glp/d3-long/*.json -->
    <!-- source: bench/results/train_throughput.json; skip: params, batch×seq -->
    | label | number | ... |

- `source:` repository-relative paths (globs allowed) of .json, .jsonl or .csv files; every path must match a file.
- The first column is the row label and is not checked; `skip:` names further columns (header text, comma-separated)
  whose numbers are configuration or arithmetic on other cells, not values stored in the files.
- Every other number in a data row must equal, at the precision shown, some number in the cited files: |value - x|
  <= half a unit of the last shown digit. In a cell showing a "%", each number may be a percentage ("12.5 % ± 2.5"
  also matches 0.125 and 0.025); "5.3M" / "431k" are x 1e6 / x 1e3;
  "−" (U+2212) is a minus sign; "≈0" is 0. Numbers glued to letters (d3, x0, bf16, 2D+) are names, not numbers.
- Every table in docs/results.md needs a source comment, except tables in the sections of PENDING (rewritten
  concurrently: checked when they carry a comment, skipped when they do not). In docs/benchmarks.md a table may
  instead say `<!-- source: none (why) -->`.

`make check-docs` runs this file; `make test` runs it with the rest of the suite.
"""

from __future__ import annotations

import bisect
import csv
import json
import math
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PENDING = ("HumanEval",)  # docs/results.md sections being rewritten: tables without a source comment are skipped
SOURCE = re.compile(r"<!--\s*source:\s*(.*?)\s*-->")
NUMBER = re.compile(
    r"(?<![\w.])(?P<sign>[+\-−]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?"
    r"(?:e(?P<exp>[+\-−]?\d+))?(?P<mult>[kMB])?(?![\w])(?P<pct>\s?%)?")
SCALE = {"k": 1e3, "M": 1e6, "B": 1e9}


def numbers(text: str) -> list[tuple[str, float, float, bool]]:
    """(shown text, value, tolerance, is_percent) for every number in a table cell."""
    return [n[:4] for n in _numbers(text)]


def _numbers(text: str) -> list[tuple[str, float, float, bool, tuple[int, int], bool]]:
    out = []
    for m in NUMBER.finditer(text.replace("≈", " ")):
        frac = m["frac"] or ""
        x = float(m["int"].replace(",", "") + ("." + frac if frac else ""))
        tol = 0.5 * 10.0 ** -len(frac)
        scale = 10.0 ** int(m["exp"].replace("−", "-")) if m["exp"] else 1.0
        scale *= SCALE.get(m["mult"] or "", 1.0)
        sign = -1.0 if m["sign"] in ("-", "−") else 1.0
        out.append((m.group(0).strip(), sign * x * scale, tol * scale, bool(m["pct"]), m.span(), scale != 1.0))
    return out


def _walk(obj, out: list[float]) -> None:
    if isinstance(obj, bool) or obj is None:
        return
    if isinstance(obj, (int, float)):
        if math.isfinite(obj):  # NaN would break the sorted search
            out.append(float(obj))
    elif isinstance(obj, dict):
        for v in obj.values():
            _walk(v, out)
    elif isinstance(obj, list):
        for v in obj:
            _walk(v, out)


def file_values(path: Path) -> list[float]:
    """Every number stored in a .json / .jsonl / .csv file."""
    out: list[float] = []
    text = path.read_text()
    if path.suffix == ".json":
        _walk(json.loads(text), out)
    elif path.suffix == ".jsonl":
        for line in text.splitlines():
            if line.strip():
                _walk(json.loads(line), out)
    elif path.suffix == ".csv":
        for row in csv.reader(text.splitlines()):
            for cell in row:
                try:
                    v = float(cell)
                except ValueError:
                    continue
                if math.isfinite(v):
                    out.append(v)
    else:
        raise ValueError(f"{path}: unsupported source type (json, jsonl, csv)")
    return out


def _present(sorted_vals: list[float], x: float, tol: float) -> bool:
    tol = tol * (1 + 1e-9) + 1e-12 * abs(x)
    i = bisect.bisect_left(sorted_vals, x - tol)
    return i < len(sorted_vals) and sorted_vals[i] <= x + tol


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def tables(md: str):
    """(line number, section heading, source comment or None, header cells, [(line number, cells)]) per table."""
    lines, section, i = md.splitlines(), "", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        if line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1].strip()):
            j = i - 1
            while j >= 0 and not lines[j].strip():
                j -= 1
            m = SOURCE.search(lines[j]) if j >= 0 else None
            start, header, rows = i + 1, _cells(line), []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append((i + 1, _cells(lines[i])))
                i += 1
            yield start, section, m[1] if m else None, header, rows
            continue
        i += 1


def _norm(h: str) -> str:
    return re.sub(r"\s+", " ", h.replace("*", "").replace("`", "")).strip()


def parse_source(source: str) -> tuple[list[str], set[str]]:
    """'a.json b/*.csv; skip: col, col' -> (path patterns, normalised skipped column headers)."""
    paths, _, skip = source.partition(";")
    return paths.split(), {_norm(s) for s in skip.strip().removeprefix("skip:").split(",") if s.strip()}


def checked_columns(header: list[str], skip: set[str]) -> list[int]:
    return [k for k, h in enumerate(header) if k > 0 and _norm(h) not in skip]


def traced(vals: list[float], x: float, tol: float, pct: bool) -> bool:
    return _present(vals, x, tol) or (pct and _present(vals, x / 100, tol / 100))


def check(md_path: Path, root: Path = ROOT, allow_none: bool = False, pending: tuple[str, ...] = ()) -> list[str]:
    """Problems (one line each) with the sourced tables of a markdown file; [] when every number is traced."""
    problems, name, cache = [], md_path.name, {}
    for line_no, section, source, header, rows in tables(md_path.read_text()):
        where = f"{name}:{line_no} ({section})"
        if source is None:
            if not any(section.startswith(p) for p in pending):
                problems.append(f"{where}: table without a <!-- source: ... --> comment")
            continue
        patterns, skip = parse_source(source)
        if allow_none and patterns[:1] == ["none"]:
            continue
        unknown = skip - {_norm(h) for h in header}
        if unknown:
            problems.append(f"{where}: skip names no column: {sorted(unknown)}")
        files = []
        for pattern in patterns:
            if pattern.startswith("/"):
                problems.append(f"{where}: source {pattern} is not repository-relative")
                continue
            found = sorted(p for p in root.glob(pattern) if p.is_file())
            if not found:
                problems.append(f"{where}: source {pattern} matches no file")
            files += found
        if not files:
            continue
        key = tuple(files)
        if key not in cache:
            cache[key] = sorted(v for f in files for v in file_values(f))
        vals = cache[key]
        for row_no, cells in rows:
            for k in checked_columns(header, skip):
                cell = cells[k] if k < len(cells) else ""
                for shown, x, tol, _ in numbers(cell):
                    if not traced(vals, x, tol, "%" in cell):
                        problems.append(f"{name}:{row_no} column '{_norm(header[k])}': {shown} is in none of "
                                        f"{' '.join(str(f.relative_to(root)) for f in files)}")
    return problems


DOCS = {"results.md": {"pending": PENDING}, "benchmarks.md": {"allow_none": True}}


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_table_numbers_are_in_their_sources(doc):
    problems = check(ROOT / "docs" / doc, **DOCS[doc])
    assert not problems, "\n".join(problems)


def test_number_parsing():
    got = [(s, round(x, 9), round(t, 12), p) for s, x, t, p in
           numbers("**+4.1%** d3 x0 2D+ −0.632 [1.4e5, 6.4e17] 24,441 5.3M ≈0 2.5 % 16×256 1e-3")]
    assert got == [("+4.1%", 4.1, 0.05, True), ("−0.632", -0.632, 0.0005, False), ("1.4e5", 1.4e5, 5e3, False),
                   ("6.4e17", 6.4e17, 5e15, False), ("24,441", 24441, 0.5, False), ("5.3M", 5.3e6, 5e4, False),
                   ("0", 0, 0.5, False), ("2.5 %", 2.5, 0.05, True), ("16", 16, 0.5, False),
                   ("256", 256, 0.5, False), ("1e-3", 1e-3, 5e-4, False)]


def _doc(tmp_path: Path, table: str, data: dict, source: str = "r.json") -> list[str]:
    (tmp_path / "r.json").write_text(json.dumps(data))
    md = tmp_path / "doc.md"
    md.write_text(f"## S\n\n<!-- source: {source} -->\n| label | value |\n|---|---|\n{table}\n")
    return check(md, root=tmp_path)


def test_check_fails_on_a_number_not_in_the_file(tmp_path):
    data = {"a": 0.12345, "b": [0.0412, -1.5], "n": 7}
    assert _doc(tmp_path, "| x | 0.123 [−1.50] (+4.1%) 7 |", data) == []
    assert len(_doc(tmp_path, "| x | 0.124 |", data)) == 1  # a changed number
    assert len(_doc(tmp_path, "| x | 1.50 |", data)) == 1  # the sign matters
    assert len(_doc(tmp_path, "| x | 0.1236 |", data)) == 1  # more digits than the file supports
    assert _doc(tmp_path, "| 99 | 7 |", data) == []  # the label column is not checked
    assert "matches no file" in _doc(tmp_path, "| x | 7 |", data, source="missing.json")[0]
    md = tmp_path / "doc.md"
    md.write_text("## S\n\n| label | value |\n|---|---|\n| x | 1 |\n")
    assert "without a <!-- source" in check(md, root=tmp_path)[0]
    md.write_text("## HumanEval: x\n\n| label | value |\n|---|---|\n| x | 1 |\n")
    assert check(md, root=tmp_path, pending=PENDING) == []


@pytest.mark.parametrize("doc", sorted(DOCS))
def test_every_sourced_table_is_live(doc, tmp_path):
    """Changing the first checked number of any sourced table to a value in none of its files is caught."""
    path = ROOT / "docs" / doc
    text = path.read_text()
    lines, n_tables = text.splitlines(), 0
    for _, section, source, header, rows in tables(text):
        if source is None or parse_source(source)[0][:1] == ["none"]:
            continue
        patterns, skip = parse_source(source)
        vals = sorted(v for pat in patterns for f in ROOT.glob(pat) for v in file_values(f))
        hit = next(((r, k, n) for r, cells in rows for k in checked_columns(header, skip) if k < len(cells)
                    for n in _numbers(cells[k])), None)
        if hit is None:
            continue
        row_no, k, (_, x, tol, _, (a, b), scaled) = hit
        new = next(t for t in (f"{x + j * 2 * tol:.3e}" if scaled else f"{x + j * 2 * tol:.{_decimals(tol)}f}"
                               for j in range(1, 1000)) if not traced(vals, *numbers(t)[0][1:3], True))
        cells = lines[row_no - 1].split("|")
        cell = cells[k + 1].strip().replace("≈", " ")
        cells[k + 1] = f" {cell[:a]}{new}{cell[b:]} "
        md = tmp_path / doc
        md.write_text("\n".join(lines[:row_no - 1] + ["|".join(cells)] + lines[row_no:]) + "\n")
        problems = [p for p in check(md, **DOCS[doc]) if p.startswith(f"{doc}:{row_no} ")]
        assert problems, f"{doc}:{row_no} ({section}): changing a number to {new} went unnoticed"
        n_tables += 1
    assert n_tables >= 5


def _decimals(tol: float) -> int:
    return max(0, round(-math.log10(2 * tol)))

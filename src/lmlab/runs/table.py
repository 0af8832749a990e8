"""The runs table: one CSV row per (run, eval step) that `lmlab scaling` reads directly.

Columns (DESIGN.md "Runs table"): run, step, N (= N_nonembed, Kaplan's convention), N_total, N_nonembed,
N_matmul, D (tokens trained), C (training FLOPs = exact FLOPs/token x D, attention included),
C_6ND (6 N_total D, the textbook estimate), loss (pooled held-out loss), loss_<domain>, train_loss, lr.
Several runs (a sweep) may share one file: appends take an fcntl lock, and a header that lacks a new
column is widened in place.
"""

from __future__ import annotations

import csv
import fcntl
import os
from contextlib import contextmanager
from pathlib import Path

from lmlab.io import atomic_path


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name("." + path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_rows(path: str | os.PathLike) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _rewrite(path: Path, rows: list[dict], header: list[str]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=header, restval="")
        w.writeheader()
        w.writerows(rows)


def append_row(path: str | os.PathLike, row: dict) -> None:
    """Append `row`; widen the header (rewriting the file atomically) if it brings new columns."""
    path = Path(path)
    with _locked(path):
        rows = read_rows(path)
        header = list(rows[0].keys()) if rows else []
        if not path.is_file() or any(k not in header for k in row):
            header += [k for k in row if k not in header]
            _rewrite(path, rows + [row], header)
            return
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, fieldnames=header, restval="").writerow(row)


def drop_after(path: str | os.PathLike, run: str, step: int) -> None:
    """Remove rows of `run` logged after `step` (a resumed run re-logs them)."""
    path = Path(path)
    with _locked(path):
        rows = read_rows(path)
        keep = [r for r in rows if not (r.get("run") == run and int(r.get("step") or 0) > step)]
        if len(keep) != len(rows):
            _rewrite(path, keep, list(rows[0].keys()))

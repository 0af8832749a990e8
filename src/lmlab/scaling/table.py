"""Read a runs table (CSV) into validated float columns for the fitters.

Default columns N (params), D (tokens), C (FLOPs), loss (DESIGN.md); each renamable. When a law needs D and the
CSV has only N and C, D = C / (6 N); when it needs C and the CSV has N and D, C = 6 N D (Kaplan's estimate).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmlab.errors import DataError


@dataclass
class Columns:
    """CSV column names for each quantity."""

    n: str = "N"
    """Parameter count column."""
    d: str = "D"
    """Training tokens column."""
    c: str = "C"
    """Training FLOPs column."""
    loss: str = "loss"
    """Loss column (for passrate: -mean log pass rate)."""


def read_table(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"runs file {path} not found", "pass --runs with an existing CSV (e.g. a sweep's runs.csv)")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise DataError(f"{path} has no data rows", "the CSV needs a header and at least one row")
    return rows


def _column(rows: list[dict], name: str, path) -> np.ndarray | None:
    if name not in rows[0]:
        return None
    out = np.empty(len(rows))
    for i, r in enumerate(rows):
        try:
            out[i] = float(r[name]) if r[name] not in ("", None) else np.nan
        except ValueError:
            raise DataError(f"{path}: row {i + 2} column {name} is not a number ({r[name]!r})",
                            "fix or drop that row") from None
    return out


def load_columns(path: str | Path, cols: Columns, need: tuple[str, ...], rows: list[dict] | None = None
                 ) -> dict[str, np.ndarray]:
    """{"N", "D", "C", "loss"} arrays for the quantities in `need` (+ loss), deriving D or C via C = 6 N D."""
    rows = rows if rows is not None else read_table(path)
    raw = {"N": _column(rows, cols.n, path), "D": _column(rows, cols.d, path), "C": _column(rows, cols.c, path),
           "loss": _column(rows, cols.loss, path)}
    if raw["D"] is None and raw["N"] is not None and raw["C"] is not None:
        raw["D"] = raw["C"] / (6 * raw["N"])
    if raw["C"] is None and raw["N"] is not None and raw["D"] is not None:
        raw["C"] = 6 * raw["N"] * raw["D"]
    names = {"N": cols.n, "D": cols.d, "C": cols.c, "loss": cols.loss}
    out = {}
    for q in (*need, "loss"):
        if raw[q] is None:
            have = ", ".join(rows[0].keys())
            raise DataError(f"{path}: missing column '{names[q]}' ({q})",
                            f"columns are: {have}; rename with --{q.lower()}-col" if q != "loss" else
                            f"columns are: {have}; rename with --loss-col")
        out[q] = raw[q]
    return out


def group_labels(rows: list[dict], column: str = "run") -> np.ndarray | None:
    """Run labels for a bootstrap over runs (None when the CSV has no such column)."""
    return np.array([r[column] for r in rows]) if column in rows[0] else None

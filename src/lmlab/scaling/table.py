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


def select_rows(rows: list[dict], final_only: bool = False, min_frac: float = 0.0, group_col: str = "run",
                d_col: str = "D", drop_highest_loss: int = 0, loss_col: str = "loss") -> list[dict]:
    """Row filters: each run's last row only; drop checkpoints with D < min_frac x the run's final D (early
    checkpoints, Choshen et al. 2025); drop the k highest-loss rows (Epoch drops 5 outliers)."""
    if (final_only or min_frac > 0) and group_col not in rows[0]:
        raise DataError(f"--final-only/--min-frac need a '{group_col}' column", "set --group-col to the run column")
    if final_only or min_frac > 0:
        last: dict[str, dict] = {}
        for r in rows:
            last[r[group_col]] = r  # runs.csv rows are in step order within a run
        if final_only:
            rows = list(last.values())
        else:
            rows = [r for r in rows if float(r[d_col]) >= min_frac * float(last[r[group_col]][d_col])]
    if drop_highest_loss:
        order = sorted(range(len(rows)), key=lambda i: float(rows[i][loss_col]))
        keep = set(order[: max(0, len(rows) - drop_highest_loss)])
        rows = [r for i, r in enumerate(rows) if i in keep]
    return rows


def processed_compute(rows: list[dict], c: np.ndarray, col: str | None, d_col: str, path) -> np.ndarray | None:
    """Actually-processed compute per row: column `col`, else C x trained_tokens / D (tokens that carried a
    loss after masking, lm runs.csv), else None."""
    if col is not None:
        v = _column(rows, col, path)
        if v is None:
            raise DataError(f"{path}: missing column '{col}'", f"columns are: {', '.join(rows[0])}")
        return v
    if "trained_tokens" in rows[0] and d_col in rows[0]:
        return c * _column(rows, "trained_tokens", path) / _column(rows, d_col, path)
    return None


def epoch_chinchilla(drop_highest: int = 5) -> dict[str, np.ndarray]:
    """Epoch's 245 points extracted from Hoffmann et al. 2022 Fig. 4 (Besiroglu et al. 2024, repository
    epoch-research/analyzing-chinchilla, data/svg_extracted_data.csv), with D = C / (6 N) and the
    `drop_highest` highest-loss points removed as Epoch did. Returns {"N", "D", "C", "loss"}."""
    path = Path(__file__).parent / "data" / "chinchilla_fig4_epoch_extracted.csv"
    rows = select_rows(read_table(path), drop_highest_loss=drop_highest)
    cols = load_columns(path, Columns(n="Model Size", c="Training FLOP"), ("N", "D", "C"), rows)
    return cols

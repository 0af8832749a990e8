"""Percentile bootstrap confidence intervals (Efron & Tibshirani 1993, ch. 13) for the GLP applications:
a mean over prompts (steering) or over tasks (probing; the paper's 10,000 resamples, glp.md §4b)."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(x, n_boot: int = 10_000, level: float = 0.95, seed: int = 0, stat=np.mean) -> tuple[float, float]:
    """Percentile CI of stat(x) from n_boot resamples of x (n,) with replacement."""
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("bootstrap of an empty sample")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, x.size, size=(n_boot, x.size))  # (n_boot, n)
    boots = stat(x[idx], axis=1)
    a = (1 - level) / 2
    return float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))


def mean_ci(x, n_boot: int = 10_000, level: float = 0.95, seed: int = 0) -> dict:
    """{"mean", "lo", "hi", "n"} for a sample x."""
    lo, hi = bootstrap_ci(x, n_boot, level, seed)
    return {"mean": float(np.mean(x)), "lo": lo, "hi": hi, "n": int(np.size(x))}


def paired_resamples(n: int, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_boot, n) index resamples of n paired units (the same prompts for every condition of a sweep)."""
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def seed_unit_resamples(n_seeds: int, n_units: int, n_boot: int = 2000, seed: int = 0,
                        paired_units: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Two-level (hierarchical) bootstrap indices for results of several training seeds measured on units
    (documents, test rows): seeds (n_boot, S) resampled with replacement, then units — (n_boot, U) shared by
    every seed when the units are the same for all of them (ΔLM documents), else (n_boot, S, U) drawn per seed
    (classifier test rows of each seed's own samples). Davison & Hinkley 1997 §3.8: resampling both levels
    carries the variation between seeds and the sampling of units into one interval."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, n_seeds, size=(n_boot, n_seeds))
    u = rng.integers(0, n_units, size=(n_boot, n_units) if paired_units else (n_boot, n_seeds, n_units))
    return s, u


def seed_unit_ratio(num: np.ndarray, den: np.ndarray, s: np.ndarray, u: np.ndarray) -> np.ndarray:
    """(n_boot,) resampled statistic: per seed sum(num)/sum(den) over the resampled units, averaged over the
    resampled seeds. num, den (S, U); s, u from seed_unit_resamples."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    uu = u[:, None, :] if u.ndim == 2 else u  # (B, 1 or S, U)
    rows = s[:, :, None]  # (B, S, 1)
    return (num[rows, uu].sum(-1) / den[rows, uu].sum(-1)).mean(1)


def percentile_ci(boots: np.ndarray, level: float = 0.95) -> list[float]:
    a = (1 - level) / 2
    return [float(np.quantile(boots, a)), float(np.quantile(boots, 1 - a))]

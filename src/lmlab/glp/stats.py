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

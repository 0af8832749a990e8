"""Statistics shared by every stage (no torch, no numpy import at module level).

Proportions (accuracies, exact match, pass rates, classifier accuracy) get Wilson score intervals, never the
normal p ± 1.96·sqrt(p(1−p)/n): that one leaves [0, 1] and has zero width at p = 0 or 1.
"""

from __future__ import annotations

import math


def wilson_ci(p: float, n: int, z: float = 1.96) -> list[float]:
    """Wilson score interval [lo, hi] of a proportion p observed on n trials (95% by default; Wilson 1927).
    Always inside [0, 1] and of positive width for n >= 1; [nan, nan] for n = 0 or p = nan."""
    if n <= 0 or math.isnan(p):
        return [math.nan, math.nan]
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"wilson_ci: p={p} is not a proportion")
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return [max(0.0, mid - half), min(1.0, mid + half)]

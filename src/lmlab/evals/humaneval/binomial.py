"""Clopper-Pearson ("exact") binomial interval without scipy.

`passk.exact_ci` uses scipy.stats.beta, whose import alone takes about as long as grading a few hundred
samples; `lmlab eval humaneval --samples` needs two such intervals per run, so it computes them here: the
beta quantile by bisection on the regularized incomplete beta function (continued fraction, Numerical Recipes
§6.4). Agrees with scipy to ~1e-12 (tests/evals/humaneval/test_he_binomial.py).
"""

from __future__ import annotations

import math


def exact_ci(successes: int, trials: int, level: float = 0.95) -> list[float]:
    """Clopper-Pearson interval of a binomial proportion; 0 of n gives [0, 1 - (alpha/2)^(1/n)]."""
    if trials <= 0:
        return [0.0, 1.0]
    a = (1 - level) / 2
    lo = 0.0 if successes == 0 else beta_ppf(a, successes, trials - successes + 1)
    hi = 1.0 if successes == trials else beta_ppf(1 - a, successes + 1, trials - successes)
    return [lo, hi]


def beta_ppf(q: float, a: float, b: float) -> float:
    """x with I_x(a, b) = q, by bisection (I is increasing in x; 200 halvings reach float resolution)."""
    lo, hi = 0.0, 1.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            break
        if beta_cdf(mid, a, b) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def beta_cdf(x: float, a: float, b: float) -> float:
    """Regularized incomplete beta I_x(a, b), a, b > 0."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    # the continued fraction converges fast for x < (a+1)/(a+b+2); use the symmetry I_x(a,b) = 1 - I_{1-x}(b,a)
    if x < (a + 1) / (a + b + 2):
        return math.exp(log_front) * _beta_cf(x, a, b) / a
    return 1.0 - math.exp(log_front) * _beta_cf(1 - x, b, a) / b


def _beta_cf(x: float, a: float, b: float) -> float:
    """Lentz's evaluation of the incomplete beta continued fraction."""
    tiny, eps = 1e-300, 1e-16
    qab, qap, qam = a + b, a + 1, a - 1
    c, d = 1.0, 1 - qab * x / qap
    d = 1 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1 + num * d
            d = 1 / (d if abs(d) > tiny else tiny)
            c = 1 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1) < eps:
            break
    return h

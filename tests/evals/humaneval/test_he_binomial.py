"""The scipy-free Clopper-Pearson interval (what `lmlab eval humaneval` reports as exact95) equals scipy's."""

from __future__ import annotations

import pytest

from lmlab.evals.humaneval import binomial


@pytest.mark.parametrize("trials", [1, 2, 7, 20, 164, 820, 1968, 16400])
def test_matches_scipy(trials):
    from scipy.stats import beta

    def ref(s, n):  # Clopper-Pearson from scipy's beta quantiles
        return [0.0 if s == 0 else float(beta.ppf(0.025, s, n - s + 1)),
                1.0 if s == n else float(beta.ppf(0.975, s + 1, n - s))]

    for successes in sorted({0, 1, 2, trials // 3, trials // 2, trials - 1, trials} & set(range(trials + 1))):
        ours, want = binomial.exact_ci(successes, trials), ref(successes, trials)
        assert ours == pytest.approx(want, rel=1e-10, abs=1e-13), (successes, trials)


def test_edge_cases():
    assert binomial.exact_ci(0, 164) == [0.0, pytest.approx(1 - 0.025 ** (1 / 164), rel=1e-12)]
    assert binomial.exact_ci(5, 5)[1] == 1.0 and binomial.exact_ci(0, 0) == [0.0, 1.0]

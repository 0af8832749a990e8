"""lmlab.stats.wilson_ci: the one interval for proportions (known values, bounds, no zero width)."""

import math

import pytest

from lmlab.stats import wilson_ci


def test_wilson_known_values():
    # Newcombe (1998) Table I: 81/263 -> 0.2553 to 0.3662; 0/10 -> 0 to 0.2775
    lo, hi = wilson_ci(81 / 263, 263)
    assert lo == pytest.approx(0.2553, abs=1e-4) and hi == pytest.approx(0.3662, abs=1e-4)
    lo, hi = wilson_ci(0.0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)


@pytest.mark.parametrize("p,n", [(0.0, 5), (0.1, 10), (1.0, 3), (0.5, 1), (0.999, 1000)])
def test_wilson_inside_unit_interval_and_positive_width(p, n):
    lo, hi = wilson_ci(p, n)
    assert 0.0 <= lo <= p <= hi <= 1.0 and hi > lo


def test_wilson_edge_cases():
    assert all(math.isnan(v) for v in wilson_ci(0.5, 0))
    with pytest.raises(ValueError):
        wilson_ci(1.5, 10)


def test_glp_uses_the_shared_wilson():
    from lmlab.glp import evaluate

    assert evaluate.wilson_ci is wilson_ci

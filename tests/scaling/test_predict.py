"""Predictions on synthetic laws: GPT-4-style extrapolation, compute-optimal allocation (Epoch constants),
critical batch size, compute slowdown (nominal and processed compute)."""

from __future__ import annotations

import numpy as np
import pytest

from lmlab.errors import DataError
from lmlab.scaling.laws import get_law
from lmlab.scaling.predict import (
    allocation,
    compute_optimal,
    critical_batch,
    frontier,
    predict_extrapolation,
    slowdown,
)

TRUE = {"E": 1.9, "A": 120.0, "alpha": 0.12}


def test_gpt4_extrapolation_30x_within_interval():
    """Fit a·C^b + c on runs up to X and predict a run 100x larger: the truth lies in the interval and the
    error is small; a held-out 'actual' gets its relative error reported."""
    rng = np.random.default_rng(0)
    c = np.geomspace(1e15, 1e18, 12)
    y = get_law("gpt4-c").predict(TRUE, C=c) * np.exp(0.003 * rng.standard_normal(12))
    target = 1e20
    truth = float(get_law("gpt4-c").predict(TRUE, C=target))
    r = predict_extrapolation(c, y, fit_max_compute=1e18, targets=[target], bootstrap=200, seed=0,
                              actual={target: truth})
    p = r["predictions"][0]
    assert p["compute_ratio"] == pytest.approx(100)
    assert p["ci"][0] <= truth <= p["ci"][1]
    assert abs(p["rel_error"]) < 0.02 and p["in_ci"]
    assert r["fit_points"] == 12


def test_fit_max_compute_excludes_larger_points():
    c = np.geomspace(1e15, 1e19, 20)
    y = get_law("gpt4-c").predict(TRUE, C=c)
    y[c > 1e17] += 5.0  # poison the points above X: they must not be used
    r = predict_extrapolation(c, y, fit_max_compute=1e17, targets=[1e19], bootstrap=0)
    assert r["fit_points"] == int((c <= 1e17).sum())
    assert r["predictions"][0]["predicted"] == pytest.approx(float(get_law("gpt4-c").predict(TRUE, C=1e19)), rel=1e-3)


def test_frontier_is_lower_envelope():
    c = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    loss = np.array([5.0, 5.5, 4.0, 4.2, 3.0])
    assert frontier(c, loss).tolist() == [0, 2, 4]


def test_compute_optimal_epoch_constants():
    """Closed form with Epoch's refit at Chinchilla's budget 5.76e23: ~72.2B params, 1.33T tokens, 18.4 tok/param
    (reference table, Besiroglu column); and it is the minimum of the loss along C = 6ND."""
    p = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
    n, d = compute_optimal(p, 5.76e23)
    assert n == pytest.approx(72.2e9, rel=0.01)
    assert d == pytest.approx(1.33e12, rel=0.01)
    assert 6 * n * d == pytest.approx(5.76e23)
    law = get_law("chinchilla")
    ns = n * np.geomspace(0.5, 2, 41)
    losses = law.predict(p, N=ns, D=5.76e23 / (6 * ns))
    assert int(np.argmin(losses)) == 20


def test_allocation_has_intervals_from_bootstrap():
    from lmlab.scaling.fit import fit

    rng = np.random.default_rng(1)
    true = {"E": 1.8, "A": 400.0, "B": 1500.0, "alpha": 0.34, "beta": 0.29}
    n = np.repeat(np.geomspace(1e7, 1e11, 6), 5)
    d = n * np.tile(np.geomspace(2, 500, 5), 6)
    y = get_law("chinchilla").predict(true, N=n, D=d) * np.exp(0.003 * rng.standard_normal(n.size))
    res = fit("chinchilla", N=n, D=d, loss=y, starts=20, bootstrap=40, seed=0)
    row = allocation(res, [1e21])[0]
    n_true, _ = compute_optimal(true, 1e21)
    assert row["N_opt_ci"][0] < row["N_opt"] < row["N_opt_ci"][1]
    assert row["tokens_per_param"] == pytest.approx(row["D_opt"] / row["N_opt"])
    assert row["N_opt"] == pytest.approx(n_true, rel=0.5)


def test_critical_batch_kaplan():
    """B_crit(L) = 2e8 / L^(1/0.21) tokens (Kaplan et al. 2020 eq. 5.4): it grows as the loss falls."""
    b = critical_batch([4.0, 3.0, 2.0])
    assert b[2] == pytest.approx(2e8 / 2.0 ** (1 / 0.21))
    assert b[0] < b[1] < b[2]
    with pytest.raises(DataError):
        critical_batch([0.0])


def test_slowdown_recovers_planted_factor():
    """The other series needs 2x the baseline's compute for every loss (nominal), and processed only 80% of its
    nominal compute: slowdown 2.0 nominal, 1.6 processed, each within its bootstrap interval."""
    rng = np.random.default_rng(0)
    law = get_law("kaplan-c")
    p = {"C_c": 3e16, "alpha_C": 0.06}
    cb = np.geomspace(1e17, 1e20, 15)
    yb = law.predict(p, C=cb) * np.exp(0.002 * rng.standard_normal(15))
    c = np.geomspace(2e17, 2e20, 6)
    y = law.predict(p, C=c / 2)
    r = slowdown(cb, yb, c, y, c_processed=0.8 * c, bootstrap=100, seed=0)
    for pt in r["points"]:
        assert pt["slowdown_nominal"] == pytest.approx(2.0, rel=0.05)
        assert pt["slowdown_processed"] == pytest.approx(1.6, rel=0.05)
        assert pt["slowdown_nominal_ci"][1] - pt["slowdown_nominal_ci"][0] < 0.5
    covered = sum(pt["slowdown_nominal_ci"][0] <= 2.0 <= pt["slowdown_nominal_ci"][1] for pt in r["points"])
    assert covered >= 4  # 95% intervals, correlated through the one baseline fit


def test_slowdown_gpt4_law_below_irreducible_is_nan():
    law = get_law("gpt4-c")
    cb = np.geomspace(1e17, 1e20, 10)
    r = slowdown(cb, law.predict(TRUE, C=cb), np.array([1e18]), np.array([1.5]), law="gpt4-c", bootstrap=0)
    assert np.isnan(r["points"][0]["C_baseline"])

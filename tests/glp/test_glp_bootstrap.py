"""Two-level bootstrap over training seeds and units (documents / test rows) used by the recipe ablation."""

import numpy as np

from lmlab.glp.stats import percentile_ci, seed_unit_ratio, seed_unit_resamples


def test_one_seed_reduces_to_the_paired_ratio_bootstrap_over_units():
    rng = np.random.default_rng(0)
    num, den = rng.normal(1.0, 1.0, (1, 50)), rng.integers(5, 20, (1, 50)).astype(float)
    s, u = seed_unit_resamples(1, 50, n_boot=300, seed=2)
    boots = seed_unit_ratio(num, den, s, u)
    assert (s == 0).all()
    direct = num[0][u].sum(1) / den[0][u].sum(1)
    assert np.allclose(boots, direct)


def test_between_seed_spread_widens_the_interval_and_units_can_be_per_seed():
    rng = np.random.default_rng(1)
    units = rng.normal(0.0, 0.1, (4, 400))
    same, spread = units + 1.0, units + np.array([[0.0], [1.0], [2.0], [3.0]])
    for paired in (True, False):
        s, u = seed_unit_resamples(4, 400, n_boot=1000, seed=3, paired_units=paired)
        assert u.shape == ((1000, 400) if paired else (1000, 4, 400))
        w_same = np.diff(percentile_ci(seed_unit_ratio(same, np.ones_like(same), s, u)))[0]
        w_spread = np.diff(percentile_ci(seed_unit_ratio(spread, np.ones_like(spread), s, u)))[0]
        assert w_spread > 20 * w_same  # the seeds' spread (sd 1.3 over 4 seeds), not the units', sets the width


def test_two_level_interval_covers_the_true_mean_about_95_percent_of_the_time():
    rng = np.random.default_rng(4)
    hits = 0
    for rep in range(80):  # 8 seeds with a random offset each (sd 0.3), 100 documents of noise (sd 1)
        x = rng.normal(0.0, 0.3, (8, 1)) + rng.normal(0.0, 1.0, (8, 100))
        s, u = seed_unit_resamples(8, 100, n_boot=400, seed=rep, paired_units=False)
        lo, hi = percentile_ci(seed_unit_ratio(x, np.ones_like(x), s, u))
        hits += lo <= 0.0 <= hi
    assert 0.8 <= hits / 80 <= 1.0  # percentile bootstrap with 8 clusters: slightly under nominal

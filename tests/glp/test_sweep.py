"""The loss-vs-compute fit (known answer) and a tiny depth sweep end to end."""

import json

import numpy as np
import pytest
from glp_fixtures import D, store  # noqa: F401  (store is a fixture)

from lmlab.glp.sweep import fit_power_law, fit_with_ci, sweep


def test_fit_recovers_a_known_law():
    c = np.geomspace(1e10, 1e15, 30)
    y = 0.52 + 435.1 * c ** -0.169
    f = fit_power_law(c, y)
    assert f["E"] == pytest.approx(0.52, rel=1e-3) and f["alpha"] == pytest.approx(0.169, rel=1e-3)
    assert f["A"] == pytest.approx(435.1, rel=1e-2) and f["r2"] > 0.999999
    noisy = y * (1 + 0.002 * np.random.default_rng(0).standard_normal(len(y)))
    ci = fit_with_ci(c, noisy, n_boot=100)["ci"]
    assert ci["alpha"][0] < 0.169 < ci["alpha"][1]


def test_tiny_sweep_writes_rows_fit_and_plot(store, tmp_path):  # noqa: F811
    out = sweep(str(store), tmp_path / "sw", [1, 2], "tiny",
                [f"net.d_in={D}", "max_steps=60", "dtype=\"fp32\"", "lr=3e-3"], progress=False)
    assert out["rows"] == 2 * 9 and np.isfinite(out["params"]["alpha"]) and out["n_points"] == 18
    assert (tmp_path / "sw" / "scaling_fit.png").stat().st_size > 1000
    assert json.loads((tmp_path / "sw" / "scaling_fit.json").read_text())["law"] == "E + A*C^-alpha"
    again = sweep(str(store), tmp_path / "sw", [1, 2], "tiny",
                  [f"net.d_in={D}", "max_steps=60", "dtype=\"fp32\"", "lr=3e-3"], progress=False)
    assert again["rows"] == out["rows"]  # finished runs are reused, not re-trained

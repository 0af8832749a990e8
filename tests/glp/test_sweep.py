"""The loss-vs-compute fit (known answer) and a tiny depth sweep end to end."""

import json

import numpy as np
import pytest
from glp_fixtures import D, store  # noqa: F401  (store is a fixture)

from lmlab.glp.sweep import fit_rows, sweep


def test_fit_recovers_a_known_law_and_skips_warmup_checkpoints():
    """rows of 3 runs on the paper's law (E 0.52, A 435.1, alpha 0.169) plus warm-up checkpoints far off it."""
    rng = np.random.default_rng(0)
    rows = []
    for run, n in (("d1", 1e7), ("d2", 2e7), ("d3", 3e7)):
        for step in (1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, 562, 1000):
            c = 6 * n * step * 1024
            loss = 0.52 + 435.1 * c ** -0.169 if step >= 100 else 5.0  # a plateau the fit must ignore
            rows.append({"run": run, "step": step, "C": c, "loss": loss * (1 + 0.002 * rng.standard_normal())})
    f = fit_rows(rows, min_frac=0.1, n_boot=100)
    assert sorted({st for _, st in f["fitted"]}) == [100, 178, 316, 562, 1000] and f["n_points"] == 15
    assert f["params"]["alpha"] == pytest.approx(0.169, rel=0.1) and f["params"]["E"] == pytest.approx(0.52, rel=0.1)
    assert f["ci"]["alpha"][0] < 0.169 < f["ci"]["alpha"][1] and f["r2"] > 0.99
    env = fit_rows(rows, frontier=True, n_boot=0)  # d1 dominates at small C, the larger runs' ends beyond it
    cs = [float(r["C"]) for r in rows if [r["run"], r["step"]] in env["fitted"]]
    assert env["n_points"] < 15 and cs == sorted(cs)


def test_tiny_sweep_writes_rows_fit_and_plot(store, tmp_path):  # noqa: F811
    out = sweep(str(store), tmp_path / "sw", [1, 2], "tiny",
                [f"net.d_in={D}", "max_steps=60", "dtype=\"fp32\"", "lr=3e-3"], progress=False)
    assert out["rows"] == 2 * 9 and np.isfinite(out["params"]["alpha"]) and out["n_points"] == 2 * 6  # steps >= 6 of 60
    assert (tmp_path / "sw" / "scaling_fit.png").stat().st_size > 1000
    assert json.loads((tmp_path / "sw" / "scaling_fit.json").read_text())["law"] == "gpt4-c"
    again = sweep(str(store), tmp_path / "sw", [1, 2], "tiny",
                  [f"net.d_in={D}", "max_steps=60", "dtype=\"fp32\"", "lr=3e-3"], progress=False)
    assert again["rows"] == out["rows"]  # finished runs are reused, not re-trained

"""The loss-vs-compute fit (known answer) and a tiny depth sweep end to end."""

import json

import numpy as np
import pytest
from glp_fixtures import D, store  # noqa: F401  (store is a fixture)

from lmlab.glp.sweep import fit_rows, sweep


def _rows(offset: float) -> list[dict]:
    """3 runs on the paper's law (E 0.52, A 435.1, alpha 0.169), 0.2% noise, warm-up checkpoints far off it;
    run k's losses scaled by 1 + offset k (deeper runs worse at equal C)."""
    rng = np.random.default_rng(0)
    rows = []
    for k, (run, n) in enumerate((("d1", 1e7), ("d2", 2e7), ("d3", 3e7))):
        for step in (1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, 562, 1000):
            c = 6 * n * step * 1024
            loss = 0.52 + 435.1 * c ** -0.169 if step >= 100 else 5.0  # a plateau the fit must ignore
            rows.append({"run": run, "step": step, "C": c,
                         "loss": loss * (1 + offset * k) * (1 + 0.002 * rng.standard_normal())})
    return rows


def test_fit_recovers_a_known_law_and_skips_warmup_checkpoints():
    f = fit_rows(_rows(0.0), min_frac=0.1, n_boot=100)
    assert sorted({st for _, st in f["fitted"]}) == [100, 178, 316, 562, 1000] and f["n_points"] == 15
    assert f["params"]["alpha"] == pytest.approx(0.169, rel=0.1) and f["params"]["E"] == pytest.approx(0.52, rel=0.1)
    assert f["ci"]["alpha"][0] < 0.169 < f["ci"]["alpha"][1] and f["r2"] > 0.99


def test_frontier_keeps_exactly_the_undominated_checkpoints():
    rows = _rows(0.03)
    env = fit_rows(rows, frontier=True, n_boot=0)
    front = [r for r in rows if [r["run"], r["step"]] in env["fitted"]]
    assert 3 <= len(front) < 15 and front[0]["run"] == "d1"
    late = [r for r in rows if r["step"] >= 100]
    for r in late:  # a point is off the frontier exactly when a point of smaller C has a lower loss
        dominated = any(q["C"] < r["C"] and q["loss"] < r["loss"] for q in late)
        assert dominated == (r not in front)


def test_tiny_sweep_writes_rows_fit_and_plot(store, tmp_path):  # noqa: F811
    out = sweep(str(store), tmp_path / "sw", [1, 2], "tiny",
                [f"net.d_in={D}", "max_steps=60", "dtype=\"fp32\"", "lr=3e-3"], progress=False)
    assert out["rows"] == 2 * 9 and out["all_checkpoints"]["n_points"] == 2 * 6  # steps >= 6 of 60
    # the fit is gpt4-c on exactly the compute frontier of the runs.csv rows the sweep wrote
    from lmlab.runs.table import read_rows
    from lmlab.scaling.fit import fit

    rows = read_rows(tmp_path / "sw" / "runs.csv")
    late = sorted((r for r in rows if int(r["step"]) >= 6), key=lambda r: float(r["C"]))
    front = [r for i, r in enumerate(late) if all(float(q["loss"]) > float(r["loss"]) for q in late[:i])]
    assert len(rows) == 2 * 9 and out["fitted"] == [[r["run"], int(r["step"])] for r in front]
    ref = fit("gpt4-c", loss=np.array([float(r["loss"]) for r in front]), C=np.array([float(r["C"]) for r in front]),
              bootstrap=0).to_json()
    assert out["params"] == pytest.approx(ref["params"], rel=1e-6) and out["n_points"] == len(front)
    assert (tmp_path / "sw" / "scaling_fit.png").stat().st_size > 1000
    assert json.loads((tmp_path / "sw" / "scaling_fit.json").read_text())["law"] == "gpt4-c"
    again = sweep(str(store), tmp_path / "sw", [1, 2], "tiny",
                  [f"net.d_in={D}", "max_steps=60", "dtype=\"fp32\"", "lr=3e-3"], progress=False)
    assert again["rows"] == out["rows"]  # finished runs are reused, not re-trained

"""`lmlab scaling ...` through the real CLI (subprocess): fit JSON shape, column options and derivations, the
bad-input one-line errors, predict / allocate / critical-batch / slowdown, and a tiny sweep end to end."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from lmlab.scaling.laws import get_law
from tests.conftest import run_lmlab

EPOCH = Path(__file__).resolve().parents[2] / "src/lmlab/scaling/data/chinchilla_fig4_epoch_extracted.csv"


def _write(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def _gpt4_csv(tmp_path, n=12, noise=0.0) -> Path:
    c = np.geomspace(1e12, 1e16, n)
    y = get_law("gpt4-c").predict({"E": 2.0, "A": 60.0, "alpha": 0.1}, C=c)
    y = y * np.exp(noise * np.random.default_rng(0).standard_normal(n))
    return _write(tmp_path / "runs.csv", ["run", "C", "loss"], [[f"r{i}", ci, yi] for i, (ci, yi) in enumerate(zip(c, y))])


def test_fit_epoch_csv_json_shape():
    r = run_lmlab("scaling", "fit", "--runs", str(EPOCH), "--law", "chinchilla", "--n-col", "Model Size",
                  "--c-col", "Training FLOP", "--drop-highest-loss", "5", "--starts", "60", "--bootstrap", "20",
                  "--json", check=True)
    out = json.loads(r.stdout)  # exactly one JSON object on stdout
    assert {"law", "params", "ci", "r2", "n_points"} <= set(out)
    assert out["law"] == "chinchilla" and out["n_points"] == 240
    assert set(out["params"]) == {"E", "A", "B", "alpha", "beta"} == set(out["ci"])
    assert abs(out["params"]["E"] - 1.817) < 0.005


def test_fit_derives_c_from_n_and_d_and_writes_plot(tmp_path):
    n = np.geomspace(1e6, 1e8, 10)
    d = 20 * n
    y = get_law("gpt4-c").predict({"E": 2.0, "A": 60.0, "alpha": 0.1}, C=6 * n * d)
    csv_path = _write(tmp_path / "nd.csv", ["params", "tokens", "val"], [[a, b, c] for a, b, c in zip(n, d, y)])
    png = tmp_path / "fit.png"
    r = run_lmlab("scaling", "fit", "--runs", str(csv_path), "--law", "gpt4-c", "--n-col", "params", "--d-col",
                  "tokens", "--loss-col", "val", "--bootstrap", "20", "--plot", str(png), "--json", check=True)
    out = json.loads(r.stdout)
    assert out["params"]["alpha"] == pytest.approx(0.1, rel=1e-3)
    assert png.stat().st_size > 10_000


@pytest.mark.parametrize("case,needle", [
    ("nonpositive", "non-positive"),
    ("nan", "NaN"),
    ("few", "point(s) for law gpt4-c with 3 parameters"),
    ("missing", "missing column 'C'"),
    ("notnumber", "is not a number"),
])
def test_bad_input_one_line_errors(tmp_path, case, needle):
    rows = [[f"r{i}", 10.0 ** (12 + i), 5.0 - 0.3 * i] for i in range(6)]
    header = ["run", "C", "loss"]
    if case == "nonpositive":
        rows[2][2] = 0.0
    elif case == "nan":
        rows[3][1] = "nan"
    elif case == "few":
        rows = rows[:3]
    elif case == "missing":
        header = ["run", "flops", "loss"]
    elif case == "notnumber":
        rows[1][2] = "abc"
    p = _write(tmp_path / "bad.csv", header, rows)
    r = run_lmlab("scaling", "fit", "--runs", str(p), "--law", "gpt4-c", "--json")
    assert r.returncode == 2
    err = r.stderr.strip()
    assert err.startswith("error:") and needle in err and "\n" not in err, err
    assert r.stdout == ""


def test_unknown_law_and_missing_file(tmp_path):
    r = run_lmlab("scaling", "fit", "--runs", str(tmp_path / "nope.csv"), "--law", "gpt4-c")
    assert r.returncode == 2 and "not found" in r.stderr
    p = _gpt4_csv(tmp_path)
    r = run_lmlab("scaling", "fit", "--runs", str(p), "--law", "bogus")
    assert r.returncode == 2 and "unknown scaling law" in r.stderr


def test_predict_allocate_critical_batch_slowdown(tmp_path):
    p = _gpt4_csv(tmp_path, n=16, noise=0.002)
    r = run_lmlab("scaling", "predict", "--runs", str(p), "--fit-max-compute", "1e14", "--target-run", "r15",
                  "--bootstrap", "100", "--json", check=True)
    out = json.loads(r.stdout)
    pred = out["predictions"][0]
    assert pred["compute_ratio"] > 30 and abs(pred["rel_error"]) < 0.02 and pred["in_ci"]
    assert out["fit_points"] == 8  # runs r0..r7 end below 1e14; r15 is only predicted
    r = run_lmlab("scaling", "critical-batch", "--loss", "2.0,3.0", "--json", check=True)
    assert json.loads(r.stdout)["B_crit_tokens"][0] == pytest.approx(2e8 / 2.0 ** (1 / 0.21))
    fj = tmp_path / "chin.json"
    fj.write_text(json.dumps({"law": "chinchilla", "params": {"E": 1.8172, "A": 482.01, "B": 2085.43,
                                                              "alpha": 0.3478, "beta": 0.3658}}))
    r = run_lmlab("scaling", "allocate", "--fit", str(fj), "--budget", "5.76e23", "--json", check=True)
    row = json.loads(r.stdout)["allocation"][0]
    assert row["N_opt"] == pytest.approx(72.2e9, rel=0.01) and row["tokens_per_param"] == pytest.approx(18.4, rel=0.02)
    # slowdown of a series that needs 3x the compute, with processed compute from trained_tokens / D
    c = np.geomspace(1e13, 1e15, 5)
    y = get_law("gpt4-c").predict({"E": 2.0, "A": 60.0, "alpha": 0.1}, C=c / 3)
    other = _write(tmp_path / "other.csv", ["run", "C", "D", "trained_tokens", "loss"],
                   [[f"o{i}", ci, 1000, 500, yi] for i, (ci, yi) in enumerate(zip(c, y))])
    r = run_lmlab("scaling", "slowdown", "--baseline", str(p), "--runs", str(other), "--law", "gpt4-c",
                  "--bootstrap", "30", "--json", check=True)
    pts = json.loads(r.stdout)["points"]
    assert all(abs(q["slowdown_nominal"] - 3) < 0.05 and abs(q["slowdown_processed"] - 1.5) < 0.03 for q in pts)

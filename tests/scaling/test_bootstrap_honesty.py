"""Issue 14: a bootstrap never drops resamples silently, never prints an interval from a biased minority of
them (unless asked), never resamples fewer runs than it can use, and never presents a zero-width interval."""

from __future__ import annotations

import json

import numpy as np

from lmlab.scaling import fit as F
from lmlab.scaling.laws import get_law
from lmlab.scaling.predict import predict_extrapolation
from tests.conftest import run_lmlab

TRUTH = {"E": 2.0, "A": 60.0, "alpha": 0.1}


def _points(n, noise=0.003, seed=0):
    c = np.geomspace(1e12, 1e16, n)
    y = get_law("gpt4-c").predict(TRUTH, C=c) * np.exp(noise * np.random.default_rng(seed).standard_normal(n))
    return c, y


def test_counts_are_reported_and_full_bootstrap_gives_interval():
    c, y = _points(20)
    r = F.fit("gpt4-c", C=c, loss=y, bootstrap=50, seed=0).to_json()
    assert r["n_bootstrap_requested"] == 50 and r["n_bootstrap_kept"] >= 40
    assert r["bootstrap_unit"] == "points" and r["ci_note"] is None and set(r["ci"]) == {"E", "A", "alpha"}


def test_interval_withheld_when_under_80_percent_of_resamples_fit():
    # 5 points, 3 parameters: most resamples hold <= 3 distinct points and cannot be fitted
    c, y = _points(5)
    res = F.fit("gpt4-c", C=c, loss=y, bootstrap=100, seed=0)
    assert res.n_bootstrap_kept < 80 and res.n_bootstrap_requested == 100
    assert res.ci == {} and res.boot == []
    assert "no interval" in res.ci_note and f"only {res.n_bootstrap_kept} of 100" in res.ci_note
    assert "--allow-partial-bootstrap" in res.ci_note
    _, lo, hi = res.predict_ci(C=np.array([1e17]))
    assert np.isnan(lo).all() and np.isnan(hi).all()  # no prediction band either
    part = F.fit("gpt4-c", C=c, loss=y, bootstrap=100, seed=0, allow_partial_bootstrap=True)
    assert set(part.ci) == {"E", "A", "alpha"} and part.n_bootstrap_kept == res.n_bootstrap_kept
    assert "printed on request" in part.ci_note


def test_one_run_resamples_points_with_a_caveat_never_zero_width():
    c, y = _points(9)
    res = F.fit("gpt4-c", C=c, loss=y, bootstrap=100, seed=0, groups=["lm"] * 9)
    assert res.bootstrap_unit == "points" and res.n_groups == 1
    assert "not runs" in res.ci_note and f"< {F.MIN_BOOT_GROUPS}" in res.ci_note
    assert all(hi > lo for lo, hi in res.ci.values())


def test_enough_runs_resample_runs():
    c, y = _points(30)
    groups = np.repeat([f"r{i}" for i in range(F.MIN_BOOT_GROUPS)], 30 // F.MIN_BOOT_GROUPS)
    res = F.fit("gpt4-c", C=c, loss=y, bootstrap=60, seed=0, groups=groups)
    assert res.bootstrap_unit == "runs" and res.n_groups == F.MIN_BOOT_GROUPS
    few = F.fit("gpt4-c", C=c, loss=y, bootstrap=60, seed=0, groups=np.repeat(["a", "b"], 15))
    assert few.bootstrap_unit == "points" and few.n_groups == 2


def test_zero_width_interval_is_never_returned(monkeypatch):
    c, y = _points(12)
    same = {"E": 2.5, "A": 40.0, "alpha": 0.12}
    monkeypatch.setattr(F, "_bootstrap", lambda *a, **k: [dict(same) for _ in range(50)])
    res = F.fit("gpt4-c", C=c, loss=y, bootstrap=50, seed=0)
    assert res.ci == {} and res.boot == [] and "zero-width" in res.ci_note
    assert res.n_bootstrap_kept == 50


def test_prediction_without_interval_says_none_not_nan():
    c, y = _points(5)
    r = predict_extrapolation(c, y, 1e16, [1e17], bootstrap=100, seed=0, actual={1e17: 1.0})
    p = r["predictions"][0]
    assert p["ci"] is None and p["in_ci"] is None and "no interval" in r["fit"]["ci_note"]
    json.dumps({k: v for k, v in r.items() if k != "_fit"}, allow_nan=False)


def test_cli_reports_kept_and_refuses_partial_interval(tmp_path):
    c, y = _points(5)
    csv = tmp_path / "runs.csv"
    csv.write_text("run,C,loss\n" + "".join(f"r{i},{a},{b}\n" for i, (a, b) in enumerate(zip(c, y))))
    r = run_lmlab("scaling", "fit", "--runs", str(csv), "--law", "gpt4-c", "--bootstrap", "100", "--json",
                  check=True)
    out = json.loads(r.stdout)
    assert out["ci"] == {} and out["n_bootstrap_requested"] == 100 and out["n_bootstrap_kept"] < 80
    assert f"bootstrap: {out['n_bootstrap_kept']} of 100 resamples kept" in r.stderr and "no interval" in r.stderr
    r = run_lmlab("scaling", "fit", "--runs", str(csv), "--law", "gpt4-c", "--bootstrap", "100", "--json",
                  "--allow-partial-bootstrap", check=True)
    out = json.loads(r.stdout)
    assert set(out["ci"]) == {"E", "A", "alpha"} and "printed on request" in out["ci_note"]


def test_cli_one_run_is_not_a_zero_width_ci(tmp_path):
    c, y = _points(9)
    csv = tmp_path / "runs.csv"
    csv.write_text("run,C,loss\n" + "".join(f"lm,{a},{b}\n" for a, b in zip(c, y)))
    r = run_lmlab("scaling", "fit", "--runs", str(csv), "--law", "gpt4-c", "--bootstrap", "60", "--json",
                  check=True)
    out = json.loads(r.stdout)
    assert out["bootstrap_unit"] == "points" and out["n_groups"] == 1 and "not runs" in out["ci_note"]
    assert all(hi > lo for lo, hi in out["ci"].values())

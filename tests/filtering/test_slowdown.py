"""Compute slowdown of a filter sweep on a known answer: a series whose losses are the baseline's at a tenth of
the compute is a 10x slowdown (nominal), and its processed-compute ratio scales with the tokens it read."""

import json

import numpy as np
import pytest

from lmlab.filtering.slowdown import filter_slowdown, slowdown_plot


def test_known_tenfold_slowdown(tmp_path):
    law = lambda c: (1e12 / c) ** 0.1  # noqa: E731  (kaplan-c: L = (C_c / C)^alpha)
    rows = []
    for size, c in zip(["a", "b", "c", "d"], [1e9, 1e10, 1e11, 1e12]):
        for series, loss_c, proc in (("baseline", c, c), ("mask", c / 10, 1.5 * c)):
            rows.append({"series": series, "size": size, "seed": 0, "c_nominal": c, "c_processed": proc,
                         "loss_medical": law(loss_c), "loss_biology": law(c)})
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": rows}))
    res = filter_slowdown(tmp_path / "sweep.json", domains=("medical", "biology"), bootstrap=50)
    med, bio = res["domains"]["medical"]["mask"], res["domains"]["biology"]["mask"]
    assert [p["slowdown_nominal"] for p in med] == pytest.approx([10.0] * 4, rel=1e-3)
    assert [p["slowdown_processed"] for p in med] == pytest.approx([15.0] * 4, rel=1e-3)
    assert [p["slowdown_nominal"] for p in bio] == pytest.approx([1.0] * 4, rel=1e-3)
    assert "slowdown_nominal_ci" not in med[0]  # exact data: every resample fits the same law, no interval
    assert slowdown_plot(tmp_path / "sweep.json", res, tmp_path / "s.png").stat().st_size > 5000
    rows = [r for r in rows if r["size"] in ("a", "b")]
    (tmp_path / "few.json").write_text(json.dumps({"runs": rows}))
    with pytest.raises(Exception, match=">= 3 sizes"):
        filter_slowdown(tmp_path / "few.json")
    assert np.isfinite(res["baseline_fit"]["medical"]["params"]["alpha_C"])


def test_noisy_baseline_gives_an_interval_around_the_truth(tmp_path):
    rng = np.random.default_rng(0)
    law = lambda c: (1e12 / c) ** 0.1  # noqa: E731
    rows = []
    for i, c in enumerate(np.geomspace(1e9, 1e12, 6)):
        for series, loss_c in (("baseline", c), ("removal", c / 10)):
            rows.append({"series": series, "size": f"s{i}", "seed": 0, "c_nominal": c, "c_processed": c,
                         "loss_medical": law(loss_c) * np.exp(rng.normal(0, 0.004)), "loss_biology": law(c)})
    (tmp_path / "sweep.json").write_text(json.dumps({"runs": rows}))
    res = filter_slowdown(tmp_path / "sweep.json", domains=("medical",), bootstrap=400)
    pts = res["domains"]["medical"]["removal"]
    inside = [p["slowdown_nominal_ci"][0] <= 10 <= p["slowdown_nominal_ci"][1] for p in pts]
    assert sum(inside) >= 4 and all(3 < p["slowdown_nominal"] < 30 for p in pts)

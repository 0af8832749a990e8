"""Few-shot intervals: proportions (accuracy, exact match) get Wilson intervals, so the curve's error bars
never reach below 0 % or above 100 % (the old normal interval p ± 1.96 se did at small accuracies)."""

from __future__ import annotations

import pytest

from lmlab.evals.fewshot import curves
from lmlab.evals.fewshot.score import mean_se, metric_ci
from lmlab.stats import wilson_ci


def _cell(k, value, n, metric="exact_match"):
    _, se = mean_se([1.0] * round(value * n) + [0.0] * (n - round(value * n)))
    return {"task": "2D+", "shots": k, "primary_metric": metric, "metrics": {metric: value}, "se": {metric: se},
            "n": n, "shots_used_mean": float(k), "seconds": 1.0}


def test_metric_ci_is_wilson_for_proportions():
    _, se = mean_se([1.0] + [0.0] * 9)
    assert 0.1 - 1.96 * se < 0  # the interval the report used to draw
    for m in ("exact_match", "acc", "acc_char", "acc_uncond"):
        assert metric_ci(m, 0.1, se, 10) == wilson_ci(0.1, 10)
    assert metric_ci("exact_match", 0.1, se, 10)[0] >= 0
    assert metric_ci("exact_match", 0.0, float("nan"), 10)[1] > 0  # 0/10 is not a zero-width interval
    assert metric_ci("perplexity", 12.0, 1.0, 10) == pytest.approx([10.04, 13.96])
    assert metric_ci("f1", 0.05, 0.05, 10)[0] == 0.0


def test_curve_table_and_plot_bars_stay_inside_0_100(tmp_path, monkeypatch):
    cells = [_cell(0, 0.0, 10), _cell(1, 0.1, 10), _cell(5, 0.9, 10)]
    rows = curves.curve_table(cells)
    assert [r["ci"] for r in rows] == [wilson_ci(c["metrics"]["exact_match"], 10) for c in cells]
    import matplotlib.axes

    seen = []
    real = matplotlib.axes.Axes.errorbar
    monkeypatch.setattr(matplotlib.axes.Axes, "errorbar",
                        lambda self, x, y, yerr=None, **kw: seen.append((y, yerr)) or real(self, x, y, yerr=yerr, **kw))
    curves.plot_curves(cells, tmp_path / "c.png")
    (ys, (below, above)), = seen
    assert all(y - b >= 0 for y, b in zip(ys, below)) and all(y + a <= 100 for y, a in zip(ys, above))
    assert below[0] == 0 and above[0] > 0  # 0/10: bar upwards only, not zero width

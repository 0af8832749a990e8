"""The demo stage writes one in-context learning curve (quick mode)."""

from __future__ import annotations

from lmlab.evals.fewshot.demo import demo_stage


def test_demo_stage_quick(tmp_path):
    section, summary = demo_stage(tmp_path, quick=True)
    assert [r["K"] for r in summary["curve"]] == [0, 1, 5] and all(r["n"] == 10 for r in summary["curve"])
    assert all(0 <= r["value"] <= 1 for r in summary["curve"])
    assert (tmp_path / "fewshot_curve.png").stat().st_size > 1000 and section.images
    assert (tmp_path / "fewshot" / "2D+_k5.json").is_file()

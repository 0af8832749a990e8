"""The scaling demo stage (quick): Epoch refit + frontier L(C) fit, plots written, Section for the report."""

from __future__ import annotations

import json


def test_demo_stage_quick(tmp_path):
    from lmlab.scaling.demo import demo_stage

    section, result = demo_stage(tmp_path, quick=True)
    assert section.title == "Scaling laws" and len(section.images) == 2
    for png in section.images:
        assert (tmp_path / png.split("/")[-1]).stat().st_size > 10_000
    p = result["chinchilla"]["params"]
    assert abs(p["E"] - 1.817) < 0.005 and abs(p["alpha"] - 0.348) < 0.003
    assert result["chinchilla"]["ci"]["E"][0] < p["E"] < result["chinchilla"]["ci"]["E"][1]
    assert 10 < result["allocation_5.76e23"]["tokens_per_param"] < 40  # Epoch's refit: ~18 at Chinchilla scale
    json.dumps(result)  # JSON-able

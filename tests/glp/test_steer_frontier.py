"""Issue 19 part 2: degeneration measures, matched-concept frontiers, the edit-preserving `guided` mode, the
positions="all" hook, the held-out concept classifier on SmolLM2, and the frontier experiment script."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lmlab.glp import steering as S
from lmlab.glp.net import GLP, Denoiser, DenoiserConfig, Normalizer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smol():
    from lmlab.models import load_causal_lm

    return load_causal_lm("smollm2")


def _glp(d=576, seed=0):
    torch.manual_seed(seed)
    std = torch.linspace(1.0, 6.0, d) ** 2  # anisotropic: z-space and raw-space directions differ
    return GLP(Denoiser(DenoiserConfig(d_in=d, n_layers=1, d_model=32, d_mlp=64)),
               Normalizer(torch.randn(d), std)).eval()


def test_distinct_n_and_repetition_known_answers():
    assert S.distinct_n([1, 2, 3, 4], 1) == 1.0 and S.distinct_n([1, 1, 1, 1], 1) == 0.25
    assert S.distinct_n([1, 1, 1, 1], 2) == pytest.approx(1 / 3) and S.distinct_n([7], 2) == 1.0
    assert S.repetition_rate([5] * 20) == pytest.approx(17 / 20)  # trigrams at 2..19: the first is new
    assert S.repetition_rate([1, 2, 3, 1, 2, 3, 4]) == pytest.approx(1 / 7)  # only (1,2,3) recurs, ending at 5
    assert S.repetition_rate(list(range(20))) == 0.0


def test_newline_loop_is_not_fluent_a_sentence_is(smol):
    _, tok = smol
    cases = {"\n" * 20: False, ",,,,,,,,,,,,,,,,,,,,": False, " was to take and\n\n\n\n\n\n\n\n\n\n\n\n": False,
             " a small gland that produces a protein hormone which controls the level of sugar in the blood.": True,
             " cold and grey, so we stayed inside and read the letters my grandmother had sent.": True}
    for text, fluent in cases.items():
        q = S.quality(tok(text).input_ids, text)  # re-tokenised: a newline run is ONE token here
        assert bool(q["fluent"]) is fluent, (text, q)
    ids = tok(" was to take and").input_ids + tok("\n\n").input_ids * 16  # as generated: one token per step
    q = S.quality(ids, tok.decode(ids))
    assert q["repetition"] > 0.5 and q["distinct2"] < 0.5 and not q["fluent"], q


def test_frontier_interp_uses_the_rising_records():
    c, y = np.array([0.0, 0.5, 1.0, 0.8]), np.array([0.0, 1.0, 2.0, 10.0])
    assert S.frontier_interp(c, y, np.array([0.9]))[0] == pytest.approx(1.8)  # the post-peak point is ignored
    c, y = np.array([0.0, 0.6, 0.4, 1.0]), np.array([0.0, 1.0, 5.0, 2.0])
    assert S.frontier_interp(c, y, np.array([0.8]))[0] == pytest.approx(1.5)  # the dip is not a record
    assert np.isnan(S.frontier_interp(c, y, np.array([1.2, -0.1]))).all()  # outside: undefined


def test_matched_frontier_recovers_a_known_gap():
    """plain: concept 0.1 + 0.2 r, NLL 2 + c; sdedit: concept rises faster then saturates at 0.7, NLL 1.5 + c:
    at every matched concept level sdedit is 0.5 nats better."""
    rng = np.random.default_rng(0)
    n, rs, conds = 200, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0], []
    for lab, slope, off in (("plain", 0.2, 0.0), ("sdedit", 0.3, -0.5)):
        for r in rs:
            c = min(0.1 + slope * r, 0.7)
            conds.append({"label": lab, "baseline": "plain", "r": r, "probe": c + rng.normal(0, 0.05, n),
                          "nll": 2 + off + c + rng.normal(0, 0.3, n), "distinct2": np.full(n, 0.9),
                          "fluent": (rng.random(n) < 0.8).astype(float)})
    res = S.matched_frontier(conds, n_boot=400)
    f = res["frontiers"]
    assert f["sdedit"]["saturated"] and not f["plain"]["saturated"]
    rows = [m for m in res["matched"] if m["metric"] == "nll" and m["level"] != "mean"]
    assert len(rows) == 7 and all(m["label"] == "sdedit" and m["baseline"] == "plain" for m in rows)
    assert sum(m["lo"] is not None for m in rows) >= 6  # interior levels are defined in most resamples
    for m in (m for m in rows if m["lo"] is not None):
        assert m["diff"] == pytest.approx(-0.5, abs=0.1) and m["lo"] < m["diff"] < m["hi"] < 0, m
    mean = next(m for m in res["matched"] if m["metric"] == "nll" and m["level"] == "mean")
    assert mean["lo"] < -0.5 < mean["hi"] < 0
    d2 = [m for m in res["matched"] if m["metric"] == "distinct2" and m["level"] != "mean"]
    assert all(abs(m["diff"]) < 1e-9 for m in d2)


def test_guided_keeps_the_edit_sdedit_does_not():
    glp = _glp()
    h = glp.normalizer.mean + torch.randn(8, 576) * glp.normalizer.std
    w = torch.nn.functional.normalize(torch.randn(576), dim=0)
    alpha = 3.0 * float(glp.normalizer.std.mean())
    g, s = S.Steer(w, alpha, "guided", glp, 0.47, 10), S.Steer(w, alpha, "sdedit", glp, 0.47, 10)
    out_g, _ = g(h), s(h)
    assert g.log[0].min() >= 0.99 and g.log[0].max() <= 1.01
    assert (s.log[0] - 1).abs().max() > 0.05  # the untrained prior moves sdedit's edit
    o = S.Steer(w, alpha, "orth", glp, 0.47, 10)(h)
    assert not torch.allclose(out_g, o, atol=1e-3)  # conditioning at every step differs from the final projection
    assert not torch.allclose(out_g, h + alpha * w, atol=1e-3)  # and the rest of the vector was denoised


def test_positions_all_edits_every_real_position(smol):
    from lmlab.acts.hooks import read_residual
    from lmlab.acts.positions import encode_docs, keep_positions, pad_batch, pad_id

    model, tok = smol
    w = torch.nn.functional.normalize(torch.randn(576, generator=torch.Generator().manual_seed(0)), dim=0)
    ids, mask = pad_batch(encode_docs(tok, ["The old man looked at", "My friend and I went to the"], 512),
                          pad_id(tok), side="left")
    keep = keep_positions(tok, ids, mask)
    with torch.no_grad(), read_residual(model, 15) as base:
        model(ids, attention_mask=mask)
    with (torch.no_grad(), S.steer_positions(model, 15, S.Steer(w, 50.0), "all", keep),
          read_residual(model, 15) as got):
        model(ids, attention_mask=mask)
    diff = got[0] - base[0]  # (B, T, d)
    assert torch.allclose(diff[keep], 50.0 * w.expand(int(keep.sum()), -1), atol=1e-3)
    assert diff[~keep].abs().max() == 0  # padding and the attention sink untouched
    seen = []

    def fn(h):
        seen.append(h.shape[0])
        return h

    S.generate(model, tok, ["The old man looked at", "My friend and I went to the"], 15, fn, 4, positions="all")
    assert seen == [int(keep.sum()), 2, 2, 2]  # every real prompt position, then every generated token


def test_concept_probe_separates_heldout_medical_text(smol):
    model, tok = smol
    p = S.train_concept_probe(model, tok, 15, "medical", max_pos=40, seq_len=32)
    assert p.auc_doc > 0.8 and p.auc_token > 0.7, p.describe()
    pos, neg = S.heldout_texts("medical", 40)
    assert not any("(Med.)" in t or "(Anat.)" in t for t in pos)  # the defining labels are gone
    d = S.Direction(torch.nn.functional.normalize(torch.randn(576), dim=0), 1.0, 0.0)
    prompts = ["The patient was admitted with a fever and", "The committee met on Tuesday and"]
    pi, ci, _ = S.generate(model, tok, prompts, 15, None, 6)
    m = S.continuation_metrics(model, tok, 15, pi, ci, d, None, None, probe=p)
    assert {"probe", "distinct2", "repetition", "fluent"} <= set(m) and ((m["probe"] >= 0) & (m["probe"] <= 1)).all()


@pytest.mark.slow
def test_frontier_script_smoke_and_resume(tmp_path):
    """experiments/glp_steer_frontier.py end to end on a tiny GLP of a small SmolLM2 store: 3 prompts, 2 strengths,
    plain and guided at both position rules; a rerun finds every condition file and runs nothing."""
    from lmlab.acts.harvester import HarvestConfig, harvest
    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp.train import train_glp

    harvest(HarvestConfig(model="smollm2", layer=15, tokens=2000, out=str(tmp_path / "store"), seq_len=32,
                          batch=16), progress=False)
    cfg = apply_overrides(get_preset("glp", "tiny"), [f'store="{tmp_path / "store"}"', "max_steps=2",
                                                      "eval_rows=64", "batch_size=64"])
    train_glp(cfg, tmp_path / "glp", progress=False)
    cmd = [sys.executable, str(ROOT / "experiments" / "glp_steer_frontier.py"), "--glp", str(tmp_path / "glp"),
           "--out", str(tmp_path / "out"), "--prompts", "3", "--rs", "0,2", "--modes", "plain,guided",
           "--positions", "last,all", "--sigma-s", "0.4742", "--vary", "plain,guided", "--max-new-tokens", "4", "--probe-docs", "24",
           "--n-docs", "16", "--n-boot", "100"]
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "out" / "frontier.json").read_text())
    assert set(res["frontiers"]) == {"plain@last", "plain@all", "guided@last", "guided@all"}
    assert all(c["retention"] > 0.99 for c in res["conditions"] if c["r"] > 0)
    assert (tmp_path / "out" / "frontier.png").stat().st_size > 1000
    r2 = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert r2.returncode == 0 and "0 to run" in r2.stderr, r2.stderr

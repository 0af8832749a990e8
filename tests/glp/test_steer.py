"""Steering (issue 5): the last-position hook, sigma-grid purity, retention, bad input, the CLI on SmolLM2."""

import json

import pytest
import torch
from conftest import run_lmlab

from lmlab.glp import steering as S
from lmlab.glp.flow import get_sigmas
from lmlab.glp.net import GLP, Denoiser, DenoiserConfig, Normalizer


@pytest.fixture(scope="session")
def smol_glp(tmp_path_factory):
    """A real (small) SmolLM2 layer-15 store and a tiny GLP trained a few steps on it."""
    from lmlab.acts.harvester import HarvestConfig, harvest
    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp.train import train_glp

    root = tmp_path_factory.mktemp("smolglp")
    harvest(HarvestConfig(model="smollm2", layer=15, tokens=3000, out=str(root / "store"), seq_len=32, batch=16),
            progress=False)
    cfg = apply_overrides(get_preset("glp", "tiny"), [f'store="{root / "store"}"', "max_steps=3", "eval_rows=64",
                                                      "batch_size=64"])
    train_glp(cfg, root / "glp", progress=False)
    return root / "store", root / "glp"


@pytest.fixture(scope="module")
def smol():
    from lmlab.models import load_causal_lm

    return load_causal_lm("smollm2")


def _glp(d=576, seed=0):
    torch.manual_seed(seed)
    return GLP(Denoiser(DenoiserConfig(d_in=d, n_layers=1, d_model=32, d_mlp=64)),
               Normalizer(torch.zeros(d), torch.full((d,), 4.0))).eval()


def test_hook_changes_exactly_the_last_position(smol):
    from lmlab.acts.hooks import read_residual

    model, tok = smol
    ids = tok(["The weather this morning was cold and"], return_tensors="pt").input_ids
    w = torch.nn.functional.normalize(torch.randn(576, generator=torch.Generator().manual_seed(0)), dim=0)
    with torch.no_grad(), read_residual(model, 15) as base:
        model(ids)
    with torch.no_grad(), S.steer_last_position(model, 15, S.Steer(w, 50.0)), read_residual(model, 15) as got:
        model(ids)
    diff = (got[0] - base[0])[0]  # (T, d)
    assert diff[:-1].abs().max() == 0  # every earlier position untouched
    assert torch.allclose(diff[-1], 50.0 * w, atol=1e-4)  # the last one moved by exactly alpha w


def test_hook_edits_every_generation_step_once(smol):
    model, tok = smol
    seen = []

    def fn(h):
        seen.append(h.shape)
        return h

    prompts = ["The old man looked at", "My friend and I went"]
    _, conts, _ = S.generate(model, tok, prompts, 15, fn, max_new_tokens=5)
    assert len(seen) == 5 and all(s == (2, 576) for s in seen)  # prefill + 4 cached steps, last position only
    _, plain, _ = S.generate(model, tok, prompts, 15, None, max_new_tokens=5)
    assert conts == plain  # an identity edit changes nothing


def test_sigma_grid_purity_no_shared_state():
    assert torch.allclose(S.steer_sigmas(S.PAPER_SIGMA_S, 10), get_sigmas(20)[10:])  # tail of the paper's grid
    g1 = S.steer_sigmas(0.3, 5)
    g1[0] = 99.0  # a caller mutating its grid must not leak into the next call
    assert S.steer_sigmas(0.3, 5)[0] == pytest.approx(0.3)
    glp = _glp()
    h = torch.randn(4, 576) * 2
    w = torch.nn.functional.normalize(torch.randn(576), dim=0)
    eps = torch.randn(4, 576)
    a = S.postprocess(glp, h, h + 3 * w, w, "sdedit", 0.47, 10, eps)
    S.postprocess(glp, h, h, w, "sdedit", 0.9, 3, eps)  # other calls at other noise levels in between
    from lmlab.glp.probe import meta_neurons

    meta_neurons(glp, h, 0.1)
    b = S.postprocess(glp, h, h + 3 * w, w, "sdedit", 0.47, 10, eps)
    assert torch.equal(a, b)
    s1, s2 = S.Steer(w, 3.0, "x0", glp, 0.47, seed=5), S.Steer(w, 3.0, "x0", glp, 0.47, seed=5)
    assert torch.equal(s1(h), s2(h))  # same seed, same fresh-noise stream
    assert not torch.equal(s1(h), s1.__class__(w, 3.0, "x0", glp, 0.47, seed=5)(h))  # eps advances per call


def test_retention_of_pure_addition_is_one_and_orthogonal_modes_keep_the_edit():
    glp = _glp()
    h = torch.randn(8, 576) * 2
    w = torch.nn.functional.normalize(torch.randn(576), dim=0)
    for mode in ("plain", "orth", "delta"):
        st = S.Steer(w, 7.0, mode, glp)
        st(h)
        assert torch.allclose(st.log[0], torch.ones(8), atol=1e-4), mode
    st = S.Steer(w, 7.0, "sdedit", glp)
    st(h)
    assert (st.log[0] - 1).abs().max() > 1e-3  # an untrained prior does change the edit
    assert torch.equal(S.Steer(w, 0.0, "delta", glp)(h), h)  # delta at r = 0: the activation itself


def test_diffmean_concept_scores_its_own_sets(smol):
    model, tok = smol
    pos, neg = S.concept_texts("sentiment")
    d = S.diffmean(model, tok, 15, pos[:10], neg[:10])
    assert d.w.norm() == pytest.approx(1.0, abs=1e-5) and d.s_pos > d.s_neg


def test_bad_inputs_one_line_errors(tmp_path, smol_glp):
    _store, glp = smol_glp
    from lmlab.io import save_safetensors

    save_safetensors(tmp_path / "v.safetensors", {"vector": torch.ones(100)})
    cases = [(["--concept", "nope"], "unknown concept set"),
             (["--vector", str(tmp_path / "v.safetensors")], "has shape (100,)"),
             (["--concept", "sentiment", "--sigma-s", "1.5"], "outside (0, 1]")]
    from lmlab.errors import ConfigError

    for bad in (0.0, -0.1, 1.0001):
        with pytest.raises(ConfigError, match="outside"):
            S.Steer(torch.ones(576), 1.0, "x0", _glp(), bad)
    with pytest.raises(ConfigError, match="unknown steering mode"):
        S.Steer(torch.ones(576), 1.0, "magic", _glp())
    for extra, msg in cases:
        r = run_lmlab("glp", "steer", "--glp", str(glp), "--prompt", "Hello", *extra)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, (extra, r.stderr)


@pytest.mark.slow
def test_cli_steer_and_sweep(tmp_path, smol_glp):
    _store, glp = smol_glp
    r = run_lmlab("glp", "steer", "--glp", str(glp), "--concept", "sentiment", "--prompt", "The movie was",
                  "--r", "1.0", "--mode", "x0", "--max-new-tokens", "6", "--json", check=True)
    out = json.loads(r.stdout)
    assert out["mode"] == "x0" and out["unsteered"]["text"] and 0 < out["x0"]["retention"] < 5
    r = run_lmlab("glp", "steer", "sweep", "--glp", str(glp), "--concept", "sentiment", "--out", str(tmp_path / "sw"),
                  "--set", "n_prompts=3", "--set", "rs=[0.0,1.0]", "--set", 'modes=["plain","x0","delta"]',
                  "--set", "max_new_tokens=4", "--set", "n_docs=8", "--set", "n_boot=100", "--json", check=True)
    res = json.loads(r.stdout)
    conds = {(c["mode"], c["r"]): c for c in res["conditions"]}
    assert len(conds) == 6 and (tmp_path / "sw" / "pareto.png").stat().st_size > 1000
    assert conds["plain", 1.0]["retention"] == pytest.approx(1.0, abs=1e-4)
    assert conds["delta", 0.0]["nll"]["mean"] == pytest.approx(conds["plain", 0.0]["nll"]["mean"], abs=1e-5)
    assert conds["plain", 1.0]["concept"]["mean"] > conds["plain", 0.0]["concept"]["mean"]  # the direction steers


def test_demo_stage_quick(tmp_path, smol_glp):
    from lmlab.glp.demo_apps import demo_stage
    from lmlab.io import write_json

    _store, glp = smol_glp
    section, result = demo_stage(tmp_path, True, _store, glp)
    write_json(tmp_path / "r.json", result)  # JSON-able
    rows = result["steer"]["rows"]
    assert set(rows) == {"unsteered", "plain", "sdedit"} and result["steer"]["probe"]["auc_doc"] > 0.7
    assert rows["plain"]["retention"] == pytest.approx(1.0, abs=1e-4) and rows["unsteered"]["retention"] is None
    assert all(0 <= v["probe"] <= 1 and 0 <= v["distinct2"] <= 1 for v in rows.values())
    assert "concept" in section.text and "distinct-2" in section.text
    assert {"meta@0.1", "meta@0.5", "raw", "mlp"} <= set(result["probe_mean"]) and len(result["probe_tasks"]) == 10
    assert section.images and (tmp_path / "glp_apps_probe.png").is_file()


def test_continuation_metrics_batched_equals_one_by_one(smol):
    model, tok = smol
    prompts = ["The cat", "My neighbour told me that", "Yesterday I went to the market and"]
    d = S.Direction(torch.nn.functional.normalize(torch.randn(576), dim=0), 2.0, -1.0)
    p, c, _ = S.generate(model, tok, prompts, 15, None, max_new_tokens=5)
    a = S.continuation_metrics(model, tok, 15, p, c, d, None, {"the"}, batch=8)
    b = S.continuation_metrics(model, tok, 15, p, c, d, None, {"the"}, batch=1)
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-4), k
    # the values, computed apart: one unpadded forward per prompt + continuation
    from lmlab.acts.hooks import forward_to_layer

    for i, (pi, ci) in enumerate(zip(p, c)):
        full = torch.tensor([pi + ci])
        with torch.no_grad():
            logits = model(full).logits[0].float()
            resid = forward_to_layer(model, full, 15)[0].float()
        nll = torch.nn.functional.cross_entropy(logits[len(pi) - 1:-1], torch.tensor(ci))
        concept = ((resid[len(pi):] @ d.w).mean() + 1.0) / 3.0  # (projection - s_neg) / (s_pos - s_neg)
        assert a["nll"][i].item() == pytest.approx(nll.item(), abs=1e-3), i
        assert a["concept"][i].item() == pytest.approx(concept.item(), abs=1e-3), i

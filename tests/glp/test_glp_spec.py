"""Every `--glp` takes a run directory, an official folder or a hub id (load.resolve_glp); a GLP that does not
fit the store is refused with one line before any LM loads; `lmlab glp sample` and `lmlab glp export`."""

import json

import pytest
import torch
from conftest import run_lmlab
from glp_fixtures import D, glp_run, store, tiny_official  # noqa: F401  (fixtures)
from safetensors import safe_open

from lmlab.errors import ConfigError, DataError
from lmlab.glp.load import glp_context


@pytest.fixture(scope="module")
def officials(tmp_path_factory):
    """Official folders: one fitting the synthetic store (d=16, layer 0), one of another layer, one narrower."""
    root = tmp_path_factory.mktemp("official")
    return {"fit": tiny_official(root / "fit"), "layer3": tiny_official(root / "layer3", layer=3),
            "narrow": tiny_official(root / "narrow", d=8)}


def test_glp_context_checks_width_and_layer(store, officials, glp_run):
    glp, st = glp_context(str(officials["fit"]), store)  # the loader steer, steer sweep and probe call
    assert glp.info.kind == "official" and st.layer == 0
    assert glp.info.describe().startswith(f"GLP: official {officials['fit']} — model synthetic, layer 0, d=16")
    glp, st = glp_context(glp_run, None)  # a run directory brings its own store
    assert glp.info.kind == "run" and str(st.path) == str(store)
    with pytest.raises(ConfigError, match="has no store of its own"):
        glp_context(str(officials["fit"]), None)
    with pytest.raises(DataError, match="trained on layer 3, not layer 0"):
        glp_context(str(officials["layer3"]), store)
    with pytest.raises(DataError, match="d_in=8 but the store"):
        glp_context(str(officials["narrow"]), store)


def test_eval_accepts_official_folder(store, officials):
    from lmlab.glp.evaluate import evaluate

    out = evaluate(str(officials["fit"]), store, n=200, steps=(1,))
    assert {"heldout_loss", "floor", "gaussian", "glp_1step"} <= set(out) and 0 <= out["glp_1step"]["acc"] <= 1


# each command, given an official folder of another layer than the store: one line, exit 2, before the LM loads
CMDS = {"eval": ["glp", "eval"], "delta-lm": ["glp", "delta-lm"],
        "steer": ["glp", "steer", "--concept", "sentiment", "--prompt", "Hi"],
        "steer sweep": ["glp", "steer", "sweep", "--concept", "sentiment", "--out", "OUT"],
        "probe": ["glp", "probe"], "sample": ["glp", "sample", "--out", "OUT/s.safetensors"]}


@pytest.mark.parametrize("cmd", list(CMDS))
def test_cli_glp_option_takes_official_folder(cmd, store, officials, tmp_path):
    args = [a.replace("OUT", str(tmp_path)) for a in CMDS[cmd]]
    r = run_lmlab(*args, "--store", str(store), "--glp", str(officials["layer3"]))
    assert r.returncode == 2, r.stderr
    assert "trained on layer 3, not layer 0" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_sample_with_store(store, officials, tmp_path):
    out = tmp_path / "s.safetensors"
    r = run_lmlab("glp", "sample", "--glp", str(officials["fit"]), "--n", "100", "--steps", "2", "--seed", "5",
                  "--out", str(out), "--store", str(store), check=True)
    res = json.loads(r.stdout)
    assert res["vs_store"]["n_real"] == 100 and {"fd", "fd_raw", "acc", "acc_ci95"} <= set(res["vs_store"])
    assert "GLP: official" in r.stderr and res["glp_info"].startswith("GLP: official")  # what was loaded
    with safe_open(str(out), "pt") as f:
        assert f.get_tensor("activations").shape == (100, D)
        assert f.metadata()["seed"] == "5" and f.metadata()["steps"] == "2"
    assert not list(tmp_path.glob("*.tmp-*"))
    r = run_lmlab("glp", "sample", "--glp", str(officials["fit"]), "--out", str(tmp_path / "x.safetensors"),
                  "--dry-run", check=True)
    assert json.loads(r.stdout)["steps"] == 20 and not (tmp_path / "x.safetensors").exists()


def test_cli_export_then_sample_reproducible(glp_run, tmp_path):
    r = run_lmlab("glp", "export", "--glp", str(glp_run), "--out", str(tmp_path / "exp"), check=True)
    assert json.loads(r.stdout)["out"] == str(tmp_path / "exp")
    from lmlab.glp.evaluate import SampleConfig, sample

    sample(SampleConfig(glp=str(glp_run), n=20, steps=3, seed=1), tmp_path / "a.safetensors")
    r = run_lmlab("glp", "sample", "--glp", str(tmp_path / "exp"), "--n", "20", "--steps", "3", "--seed", "1",
                  "--out", str(tmp_path / "b.safetensors"), check=True)
    from safetensors.torch import load_file

    a, b = (load_file(tmp_path / f"{k}.safetensors")["activations"] for k in "ab")
    assert torch.equal(a, b)


@pytest.mark.slow
def test_steer_and_probe_run_on_exported_official_folder(tmp_path, smol_glp):
    """End to end on SmolLM2: steer, steer sweep, probe and delta-lm given an official folder (a run's export)."""
    from lmlab.glp.interop import export_official
    from lmlab.glp.probe import ProbeConfig, probe
    from lmlab.glp.steering.sweep import SteerSweepConfig, steer_once, steer_sweep

    st, run = smol_glp
    off = str(export_official(run, tmp_path / "exp"))
    out = steer_once("The movie was", off, str(st), "sentiment", mode="x0", max_new_tokens=3, n_docs=16)
    assert out["x0"]["text"] is not None and out["layer"] == 15 and out["glp_info"].startswith("GLP: official")
    cfg = SteerSweepConfig(glp=off, store=str(st), concept="sentiment", n_prompts=2, rs=[1.0], modes=["x0"],
                           max_new_tokens=2, n_docs=8, n_boot=20)
    assert steer_sweep(cfg, tmp_path / "sw", progress=False)["layer"] == 15
    res = probe(ProbeConfig(glp=off, store=str(st), tasks=["domain_python"], docs_per_domain=12, seq_len=24,
                            sigmas=[0.5], n_boot=200), progress=False)
    assert res["layer"] == 15 and "meta@0.5" in res["mean"]
    r = run_lmlab("glp", "delta-lm", "--glp", off, "--store", str(st), "--n-docs", "2", "--seq-len", "16", check=True)
    assert "delta_glp_10step" in json.loads(r.stdout) and "GLP: official" in r.stderr


from test_steer import smol_glp  # noqa: E402, F401  (the SmolLM2 store + GLP fixture, built only for the slow test)


def test_sample_options_read_their_config():
    """`glp sample`'s options take SampleConfig's defaults and docstrings (read from source, as the CLI does)."""
    import dataclasses

    import lmlab.cli  # noqa: F401  (defines every option)
    from lmlab import cli_options
    from lmlab.config import field_docs
    from lmlab.glp.evaluate import SampleConfig

    assert cli_options.UNRESOLVED == []
    src = cli_options.source_fields("lmlab.glp.evaluate:SampleConfig")
    assert {f.name: f.default for f in dataclasses.fields(SampleConfig)} == {k: v.default for k, v in src.items()}
    assert {k: v.doc for k, v in src.items() if v.doc} == field_docs(SampleConfig)

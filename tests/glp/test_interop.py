"""The official GLP checkpoint layout (reference glp.md §5.6) both ways: reading it (key mapping, statistics,
multi-layer, bad folders) and `lmlab glp export` (the layout's rules, round trip, sample reproducibility)."""

import pytest
import torch
import yaml
from glp_fixtures import D, glp_run, store, write_official  # noqa: F401  (fixtures)
from safetensors import safe_open
from safetensors.torch import load_file

from lmlab.errors import ConfigError, DataError, ModelNotFound
from lmlab.glp.load import resolve_glp
from lmlab.glp.net import Denoiser, DenoiserConfig


def _net(n_layers=2, n_llm_layers=None, seed=0):
    torch.manual_seed(seed)
    return Denoiser(DenoiserConfig(d_in=8, d_model=16, d_mlp=32, n_layers=n_layers, n_llm_layers=n_llm_layers))


def test_official_layout_loads_and_matches(tmp_path):
    net = _net()
    mean, var = torch.randn(8), torch.rand(8) + 0.5
    write_official(tmp_path / "ck", net, mean, var)
    glp = resolve_glp(tmp_path / "ck")
    i = glp.info
    assert (i.kind, i.model, i.layer, i.d_in, i.store) == ("official", "meta-llama/Llama-3.2-1B", 7, 8, None)
    assert i.n_params == sum(p.numel() for p in net.parameters())
    assert "official" in i.describe() and "layer 7" in i.describe()
    x, s = torch.randn(5, 8), torch.rand(5)
    with torch.no_grad():
        assert torch.equal(glp(x, s), net(x, s))  # lmlab velocity == the official network's output
        raw = torch.randn(5, 8) * var.sqrt() + mean
        assert torch.allclose(glp.encode(raw), (raw - mean) / var.sqrt(), atol=1e-6)  # no epsilon, like theirs


def test_epoch_checkpoint_and_layer_check(tmp_path):
    net = _net()
    write_official(tmp_path / "ck", net, torch.zeros(8), torch.ones(8), weights="checkpoints/epoch_0003.safetensors")
    glp = resolve_glp(tmp_path / "ck", layer=7)
    assert glp.info.layer == 7
    with pytest.raises(DataError, match="trained on layer 7, not layer 5"):
        resolve_glp(tmp_path / "ck", layer=5)


def test_multi_layer_statistics(tmp_path):
    net = _net(n_llm_layers=4)
    mean, var = torch.randn(4, 8), torch.rand(4, 8) + 0.5
    write_official(tmp_path / "ml", net, mean, var, layers=range(4))
    glp = resolve_glp(tmp_path / "ml", layer=2)
    assert torch.equal(glp.normalizer.mean, mean[2]) and glp.info.layer == 2
    x, s = torch.randn(5, 8), torch.rand(5)
    with torch.no_grad():
        assert torch.equal(glp(x, s), net(x, s, torch.tensor(2)))  # the layer input defaults to the chosen layer
    with pytest.raises(ConfigError, match="multi-layer GLP: which layer"):
        resolve_glp(tmp_path / "ml")
    with pytest.raises(DataError, match="lack layer 9"):
        resolve_glp(tmp_path / "ml", layer=9)


def test_bad_folders_one_line_errors(tmp_path):
    cases = []
    with pytest.raises(DataError, match="missing") as e:
        resolve_glp(tmp_path)
    cases.append(e)
    write_official(tmp_path / "bad", _net(n_layers=3), torch.zeros(8), torch.ones(8), n_layers=2)  # 3 blocks vs 2
    with pytest.raises(DataError, match="does not fit") as e:
        resolve_glp(tmp_path / "bad")
    cases.append(e)
    (tmp_path / "bad" / "final.safetensors").unlink()
    with pytest.raises(DataError, match="no final.safetensors") as e:
        resolve_glp(tmp_path / "bad")
    cases.append(e)
    write_official(tmp_path / "wide", _net(), torch.zeros(8), torch.ones(8))
    cfg = (tmp_path / "wide" / "config.yaml").read_text().replace("d_model: 16", "d_model: 24")
    (tmp_path / "wide" / "config.yaml").write_text(cfg)
    with pytest.raises(DataError, match="does not fit the config: size mismatch") as e:
        resolve_glp(tmp_path / "wide")
    cases.append(e)
    with pytest.raises(DataError, match="no GLP at") as e:
        resolve_glp(tmp_path / "absent" / "x")  # absolute path: never a hub id
    cases.append(e)
    with pytest.raises(ModelNotFound, match="fetching it as a hub id failed") as e:
        resolve_glp("no-such-org/no-such-glp")  # offline in tests: one line, no traceback
    cases.append(e)
    assert all(len(str(c.value).splitlines()) == 1 for c in cases)


def test_export_follows_the_official_layout(tmp_path, glp_run):
    from lmlab.glp.interop import export_official

    out = export_official(glp_run, tmp_path / "exp")
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "final.safetensors", "rep_statistics.pt"]
    conf = yaml.safe_load((out / "config.yaml").read_text())
    run = resolve_glp(glp_run)
    c = run.net.cfg
    assert conf["model_name"] == "synthetic"
    assert conf["glp_kwargs"]["denoiser_config"] == {"d_input": D, "d_model": c.d_model, "d_mlp": c.d_mlp,
                                                     "n_layers": c.n_layers, "multi_layer_n_layers": None}
    trace = {"layer_prefix": "model.layers", "layers": [0], "retain": "output"}
    assert conf["glp_kwargs"]["tracedict_config"] == trace
    sd = load_file(out / "final.safetensors")
    assert all(k.startswith("model.") for k in sd) and "model.layers.0.time_proj.weight" in sd
    assert {k.removeprefix("model.") for k in sd} == set(run.net.state_dict())
    stats = torch.load(out / "rep_statistics.pt", weights_only=True)
    assert set(stats) == {"mean", "var"} and stats["mean"].shape == (D,)
    assert torch.equal(stats["var"].sqrt(), run.normalizer.std)
    assert not list(tmp_path.glob("exp.tmp-*"))  # built in a temp dir, renamed into place
    export_official(glp_run, out)  # re-exporting replaces an earlier export
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="not a GLP export"):
        export_official(glp_run, tmp_path / "other")


def test_round_trip_velocities_and_samples(tmp_path, glp_run):
    from lmlab.glp.evaluate import SampleConfig, sample
    from lmlab.glp.interop import export_official

    out = export_official(glp_run, tmp_path / "exp")
    a, b = resolve_glp(glp_run), resolve_glp(out)
    assert (b.info.kind, b.info.model, b.info.layer) == ("official", "synthetic", 0)
    x, s = torch.randn(7, D), torch.rand(7)
    with torch.no_grad():
        assert torch.equal(a(x, s), b(x, s)) and torch.equal(a.decode(x), b.decode(x))
    files = {}
    for name, spec, seed in (("run", glp_run, 3), ("exp", out, 3), ("other", glp_run, 4)):
        res = sample(SampleConfig(glp=str(spec), n=50, steps=4, seed=seed), tmp_path / f"{name}.safetensors")
        assert res["n"] == 50 and res["layer"] == 0
        files[name] = load_file(tmp_path / f"{name}.safetensors")["activations"]
    assert files["run"].shape == (50, D) and torch.equal(files["run"], files["exp"])
    assert not torch.equal(files["run"], files["other"])
    with safe_open(str(tmp_path / "exp.safetensors"), "pt") as f:
        meta = f.metadata()
    assert (meta["glp"], meta["steps"], meta["seed"], meta["glp_kind"]) == (str(out), "4", "3", "official")

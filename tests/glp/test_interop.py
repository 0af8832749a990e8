"""Official GLP checkpoint layout -> lmlab GLP: key mapping checked on a synthetic checkpoint."""

import pytest
import torch
from safetensors.torch import save_file

from lmlab.errors import DataError
from lmlab.glp.interop import load_official_glp
from lmlab.glp.net import Denoiser, DenoiserConfig

CONFIG = """model_name: meta-llama/Llama-3.2-1B
glp_kwargs:
  denoiser_config:
    d_input: 8
    d_model: 16
    d_mlp: 32
    n_layers: 2
    multi_layer_n_layers: null
  tracedict_config:
    layer_prefix: model.layers
    layers: [7]
    retain: output
  normalizer_config:
    rep_statistic: rep_statistics.pt
"""


def _write(folder, net, mean, var):
    folder.mkdir()
    (folder / "config.yaml").write_text(CONFIG)
    torch.save({"mean": mean, "var": var}, folder / "rep_statistics.pt")
    save_file({"model." + k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / "final.safetensors"))


def test_official_layout_loads_and_matches(tmp_path):
    torch.manual_seed(0)
    net = Denoiser(DenoiserConfig(d_in=8, d_model=16, d_mlp=32, n_layers=2))
    mean, var = torch.randn(8), torch.rand(8) + 0.5
    _write(tmp_path / "ck", net, mean, var)
    glp, info = load_official_glp(tmp_path / "ck")
    assert info == {"model_name": "meta-llama/Llama-3.2-1B", "layers": [7]}
    x, s = torch.randn(5, 8), torch.rand(5)
    with torch.no_grad():
        assert torch.equal(glp(x, s), net(x, s))
        raw = torch.randn(5, 8) * var.sqrt() + mean
        assert torch.allclose(glp.encode(raw), (raw - mean) / var.sqrt(), atol=1e-6)  # no epsilon, like theirs


def test_missing_or_mismatched_checkpoint(tmp_path):
    with pytest.raises(DataError, match="missing"):
        load_official_glp(tmp_path)
    net = Denoiser(DenoiserConfig(d_in=8, d_model=16, d_mlp=32, n_layers=3))  # 3 blocks, config says 2
    _write(tmp_path / "bad", net, torch.zeros(8), torch.ones(8))
    with pytest.raises(DataError, match="does not fit"):
        load_official_glp(tmp_path / "bad")

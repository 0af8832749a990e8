"""Shared by the GLP tests (imported by them; pytest puts this folder on sys.path): a synthetic store."""

import pytest
import torch
from conftest import synthetic_store

D = 16


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """8,000 rows of a correlated, shifted, non-Gaussian 16-d distribution from 400 documents."""
    path = tmp_path_factory.mktemp("store") / "s"
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(D, D, generator=g)
    z = torch.randn(8000, D, generator=g)
    x = torch.tanh(z @ mix) * 3 + torch.arange(D) * 0.5
    return synthetic_store(path, x, shard_size=2000)



def crash_and_resume(cfg, tmp_path, monkeypatch, die_at: int, check=None):
    """Train cfg to the end in tmp_path/ref; train it again in tmp_path/v with the process dying at step die_at
    (only what is on disk survives), then resume v. check(batch) sees every batch of the dying run.
    -> (metrics losses of ref, of v; glp.safetensors of ref, of v) for the caller's exactness checks."""
    from safetensors.torch import load_file

    from lmlab.glp import train as T
    from lmlab.io import read_jsonl

    T.train_glp(cfg, tmp_path / "ref", progress=False)
    real = T.train_step

    def dying(cfg_, model, glp, opt, batch, step, *a):
        if check is not None:
            check(batch)
        if step == die_at:
            raise KeyboardInterrupt
        return real(cfg_, model, glp, opt, batch, step, *a)

    monkeypatch.setattr(T, "train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        T.train_glp(cfg, tmp_path / "v", progress=False)
    monkeypatch.setattr(T, "train_step", real)
    T.train_glp(cfg, tmp_path / "v", resume=True, progress=False)
    losses = [{r["step"]: r["loss"] for r in read_jsonl(tmp_path / run / "metrics.jsonl") if "eval" not in r}
              for run in ("ref", "v")]
    return (*losses, *(load_file(tmp_path / run / "glp.safetensors") for run in ("ref", "v")))


# ---- official checkpoint folders (reference glp.md §5.6), written by hand from the layout's rules ----------------
OFFICIAL_CONFIG = """model_name: {model}
glp_kwargs:
  denoiser_config:
    d_input: {d}
    d_model: {m}
    d_mlp: {h}
    n_layers: {n}
    multi_layer_n_layers: {multi}
  tracedict_config:
    layer_prefix: model.layers
    layers: {layers}
    retain: output
  normalizer_config:
    rep_statistic: rep_statistics.pt
"""


def write_official(folder, net, mean, var, layers=(7,), model="meta-llama/Llama-3.2-1B", n_layers=None,
                   weights="final.safetensors"):
    """An official checkpoint folder for `net` (a Denoiser): config.yaml, rep_statistics.pt, `model.` keys."""
    from safetensors.torch import save_file

    c = net.cfg
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(OFFICIAL_CONFIG.format(
        model=model, d=c.d_in, m=c.d_model, h=c.d_mlp, n=n_layers or c.n_layers,
        multi="null" if c.n_llm_layers is None else c.n_llm_layers, layers=list(layers)))
    torch.save({"mean": mean, "var": var}, folder / "rep_statistics.pt")
    (folder / weights).parent.mkdir(parents=True, exist_ok=True)
    save_file({"model." + k: v.contiguous() for k, v in net.state_dict().items()}, str(folder / weights))
    return folder


def tiny_official(folder, d=D, layer=0, seed=0, model="synthetic"):
    """A small single-layer official folder of width d at `layer` (statistics near the synthetic store's)."""
    from lmlab.glp.net import Denoiser, DenoiserConfig

    torch.manual_seed(seed)
    net = Denoiser(DenoiserConfig(d_in=d, d_model=32, d_mlp=64, n_layers=2))
    mean, var = torch.arange(d) * 0.5, torch.full((d,), 4.0)
    return write_official(folder, net, mean, var, layers=(layer,), model=model)


@pytest.fixture(scope="module")
def glp_run(store, tmp_path_factory):
    """A tiny lmlab GLP run directory trained a few steps on the synthetic store."""
    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp.train import train_glp

    out = tmp_path_factory.mktemp("glprun") / "g"
    cfg = apply_overrides(get_preset("glp", "tiny"), [f'store="{store}"', "max_steps=3", "eval_rows=64",
                                                      "batch_size=64", "dtype=fp32", f"net.d_in={D}"])
    train_glp(cfg, out, progress=False)
    return out

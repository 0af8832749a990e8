"""Load an official GLP checkpoint folder (g-luo/generative_latent_prior layout, read from disk, no hub):

  config.yaml           OmegaConf: glp_kwargs.denoiser_config {d_input, d_model, d_mlp, n_layers,
                        multi_layer_n_layers}, glp_kwargs.tracedict_config.layers, model_name
  rep_statistics.pt     torch.save'd dict of tensors `mean`, `var` ((d,) or (n_llm_layers, d) multi-layer)
  final.safetensors     (or checkpoints/epoch_XXXX.safetensors) the wrapper's state dict: every key "model."+name
lmlab's Denoiser uses the same parameter names, so the weights load by stripping the prefix. The official
normaliser has no epsilon; the loaded GLP uses eps=0 so its outputs match the original exactly.
"""

from __future__ import annotations

from pathlib import Path

from lmlab.errors import DataError


def load_official_glp(folder: str | Path, checkpoint: str = "final", layer_index: int | None = None):
    """(GLP, info) from an official checkpoint folder. Multi-layer statistics need `layer_index`."""
    import torch
    import yaml
    from safetensors.torch import load_file

    from lmlab.glp.net import GLP, Denoiser, DenoiserConfig, Normalizer

    folder = Path(folder)
    weights = folder / f"{checkpoint}.safetensors"
    for f in (folder / "config.yaml", folder / "rep_statistics.pt", weights):
        if not f.is_file():
            raise DataError(f"{f} is missing", "pass the folder of an official GLP checkpoint (config.yaml, "
                            "rep_statistics.pt, final.safetensors)")
    conf = yaml.safe_load((folder / "config.yaml").read_text())
    dc = conf["glp_kwargs"]["denoiser_config"]
    cfg = DenoiserConfig(d_in=dc["d_input"], d_model=dc["d_model"], d_mlp=dc["d_mlp"], n_layers=dc["n_layers"],
                         n_llm_layers=dc.get("multi_layer_n_layers"))
    stats = torch.load(folder / "rep_statistics.pt", weights_only=True, map_location="cpu")
    mean, var = stats["mean"].float(), stats["var"].float()
    if mean.dim() == 2:
        if layer_index is None:
            raise DataError("multi-layer statistics: which layer?", "pass layer_index")
        mean, var = mean[layer_index], var[layer_index]
    net = Denoiser(cfg)
    sd = {k.removeprefix("model."): v for k, v in load_file(weights).items()}
    missing, unexpected = net.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise DataError(f"{weights.name} does not fit the config: missing {missing[:3]}, unexpected {unexpected[:3]}",
                        "check that config.yaml belongs to these weights")
    info = {"model_name": conf.get("model_name"), "layers": conf["glp_kwargs"].get("tracedict_config", {}).get("layers")}
    return GLP(net, Normalizer(mean, var, eps=0.0)).eval(), info

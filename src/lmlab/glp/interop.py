"""The official GLP checkpoint layout (g-luo/generative_latent_prior; reference glp.md §5.6), both ways:

  config.yaml           OmegaConf: model_name; glp_kwargs.denoiser_config {d_input, d_model, d_mlp, n_layers,
                        multi_layer_n_layers}; glp_kwargs.tracedict_config {layer_prefix, layers, retain};
                        glp_kwargs.normalizer_config.rep_statistic
  rep_statistics.pt     torch.save'd dict of tensors `mean`, `var` ((d,) or (n_llm_layers, d) multi-layer)
  final.safetensors     (or checkpoints/epoch_XXXX.safetensors) the wrapper's state dict: every key "model."+name
lmlab's Denoiser uses the same parameter names, so the weights load by stripping the prefix. The official
normaliser has no epsilon; a loaded GLP uses eps=0 so its outputs match the original exactly.

`read_official` is reached through `lmlab.glp.load.resolve_glp` (the one loader); `export_official` writes a
run directory in this layout (`lmlab glp export`).
"""

from __future__ import annotations

from pathlib import Path

from lmlab.errors import ConfigError, DataError

_FILES_HINT = "pass the folder of an official GLP checkpoint (config.yaml, rep_statistics.pt, final.safetensors)"


def official_weights(folder: Path) -> Path:
    """final.safetensors, else the last checkpoints/epoch_*.safetensors (glp.md §5.6)."""
    if (folder / "final.safetensors").is_file():
        return folder / "final.safetensors"
    epochs = sorted((folder / "checkpoints").glob("epoch_*.safetensors"))
    if not epochs:
        raise DataError(f"{folder} has no final.safetensors or checkpoints/epoch_*.safetensors", _FILES_HINT)
    return epochs[-1]


def _statistics(folder: Path, conf: dict, layer: int | None):
    """(mean, var, layer) for one LLM layer: single-layer files hold (d,), multi-layer (n_llm_layers, d)."""
    import torch

    stats = torch.load(folder / "rep_statistics.pt", weights_only=True, map_location="cpu")
    if not isinstance(stats, dict) or not {"mean", "var"} <= set(stats):
        raise DataError(f"{folder / 'rep_statistics.pt'} lacks the tensors `mean` and `var`", _FILES_HINT)
    mean, var = stats["mean"].float(), stats["var"].float()
    layers = (conf["glp_kwargs"].get("tracedict_config") or {}).get("layers") or []
    if mean.dim() == 1:
        own = layers[0] if len(layers) == 1 else None
        if layer is not None and own is not None and layer != own:
            raise DataError(f"the GLP in {folder} was trained on layer {own}, not layer {layer}",
                            f"use it with a store/model at layer {own}, or a GLP of layer {layer}")
        return mean, var, own if own is not None else layer
    if layer is None:
        raise ConfigError(f"{folder} is a multi-layer GLP: which layer?", f"pass a layer (one of {layers or 'its'})")
    if not 0 <= layer < len(mean) or (layers and layer not in layers):
        raise DataError(f"the statistics in {folder} lack layer {layer}",
                        f"pick one of {layers or list(range(len(mean)))}")
    return mean[layer], var[layer], layer


def read_official(folder: str | Path, layer: int | None = None):
    """(GLP, info) from an official checkpoint folder; multi-layer statistics need `layer`, and a single-layer
    GLP given another `layer` is refused."""
    import yaml
    from safetensors.torch import load_file

    from lmlab.glp.load import first_line
    from lmlab.glp.net import GLP, Denoiser, DenoiserConfig, Normalizer

    folder = Path(folder)
    for f in (folder / "config.yaml", folder / "rep_statistics.pt"):
        if not f.is_file():
            raise DataError(f"{f} is missing", _FILES_HINT)
    weights = official_weights(folder)
    conf = yaml.safe_load((folder / "config.yaml").read_text()) or {}
    try:
        dc = conf["glp_kwargs"]["denoiser_config"]
        cfg = DenoiserConfig(d_in=dc["d_input"], d_model=dc["d_model"], d_mlp=dc["d_mlp"], n_layers=dc["n_layers"],
                             n_llm_layers=dc.get("multi_layer_n_layers"))
    except (KeyError, TypeError) as e:
        raise DataError(f"{folder / 'config.yaml'} lacks glp_kwargs.denoiser_config key {e}", _FILES_HINT) from None
    mean, var, layer = _statistics(folder, conf, layer)
    net = Denoiser(cfg)
    sd = {k.removeprefix("model."): v for k, v in load_file(weights).items()}
    try:
        missing, unexpected = net.load_state_dict(sd, strict=False)
    except RuntimeError as e:  # a shape mismatch
        raise DataError(f"{weights.name} does not fit the config: {first_line(e)}",
                        "check that config.yaml belongs to these weights") from None
    if missing or unexpected:
        raise DataError(f"{weights.name} does not fit the config: missing {missing[:3]}, unexpected {unexpected[:3]}",
                        "check that config.yaml belongs to these weights")
    glp = GLP(net, Normalizer(mean, var, eps=0.0)).eval()
    if cfg.n_llm_layers:
        glp.layer = layer
    return glp, {"model_name": conf.get("model_name"), "layer": layer, "weights": weights.name}


def official_config(glp, model_name: str | None, layer: int | None) -> dict:
    """config.yaml content for a single-layer GLP (the keys the official loader reads, glp.md §5.6)."""
    c = glp.net.cfg
    return {"model_name": model_name,
            "glp_kwargs": {"denoiser_config": {"d_input": c.d_in, "d_model": c.d_model, "d_mlp": c.d_mlp,
                                               "n_layers": c.n_layers, "multi_layer_n_layers": c.n_llm_layers},
                           "tracedict_config": {"layer_prefix": "model.layers",
                                                "layers": None if layer is None else [layer], "retain": "output"},
                           "normalizer_config": {"rep_statistic": "rep_statistics.pt"}}}


def export_official(spec: str | Path, out: str | Path) -> Path:
    """Write a GLP (any spec `resolve_glp` takes, normally an lmlab run directory) as an official checkpoint
    folder: built in a temp dir, then renamed into place (an earlier export there is replaced)."""
    import torch
    import yaml
    from safetensors.torch import save_file

    from lmlab.glp.load import resolve_glp
    from lmlab.io import build_dir

    out = Path(out)
    if out.exists() and not (out / "config.yaml").is_file() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not a GLP export", "pass a new --out directory")
    glp = resolve_glp(spec)
    if glp.net.cfg.n_llm_layers:
        raise ConfigError("exporting a multi-layer GLP is not supported", "export a single-layer GLP")
    mean, std = glp.normalizer.mean, glp.normalizer.std  # var = std^2: sqrt(fl(s^2)) == s, so it loads back exact

    def build(tmp: Path) -> None:
        conf = official_config(glp, glp.info.model, glp.info.layer)
        (tmp / "config.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
        torch.save({"mean": mean.clone(), "var": std.pow(2)}, tmp / "rep_statistics.pt")
        sd = {"model." + k: v.detach().contiguous() for k, v in glp.net.state_dict().items()}
        save_file(sd, str(tmp / "final.safetensors"), metadata={"format": "pt"})

    return build_dir(out, build, lambda _: False)

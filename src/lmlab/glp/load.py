"""The one GLP loader. `resolve_glp(spec)` takes an lmlab run directory, an official checkpoint folder
(reference glp.md §5.6; read by glp/interop.py) or a hub id (fetched through huggingface_hub's cache, then read
as an official folder), and tags the GLP with `.info` (what was loaded). `glp_context` pairs it with the
activation store it is used with (by default the one a run was trained on) and refuses a GLP whose width or
layer does not fit that store, before any model is loaded."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lmlab.errors import ConfigError, DataError, ModelNotFound
from lmlab.glp.net import GLP

_SPEC_HINT = "pass an lmlab GLP run directory, an official checkpoint folder or a hub id (e.g. g-luo/NAME)"
_HUB_ID = re.compile(r"[\w.-]+/[\w.-]+(/[\w.-]+)*")


@dataclass
class GLPInfo:
    kind: str
    """"run" (lmlab glp train), "official" (a local official folder) or "hub" (a hub id, via the HF cache)."""
    spec: str
    """The spec as given."""
    path: str
    """The local folder read."""
    model: str | None
    """The LLM whose activations it models (run: its store's model; official: config.yaml model_name)."""
    layer: int | None
    """The LLM layer (block output, 0-indexed; None when unknown)."""
    d_in: int
    n_params: int
    store: str | None = None
    """A run's training store (None for official checkpoints)."""

    def describe(self) -> str:
        layer = "?" if self.layer is None else self.layer
        return (f"GLP: {self.kind} {self.spec} — model {self.model or '?'}, layer {layer}, d={self.d_in}, "
                f"{self.n_params / 1e6:.2f}M params")


def _store_identity(store: str | None) -> tuple[str | None, int | None]:
    """(model, layer) from a store's manifest, (None, None) when the store is gone."""
    from lmlab.io import read_json

    if not store or not (Path(store) / "manifest.json").is_file():
        return None, None
    m = read_json(Path(store) / "manifest.json")
    return m.get("model"), None if m.get("layer") is None else int(m["layer"])


def first_line(e: Exception) -> str:
    """The first specific line of torch's multi-line load_state_dict error."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return lines[1] if len(lines) > 1 else lines[0]


def _load_run(run: Path, layer: int | None) -> tuple[GLP, dict]:
    """A GLP from an lmlab run directory (config.json + glp.safetensors)."""
    from safetensors.torch import load_file

    from lmlab.glp.net import Denoiser, DenoiserConfig, Normalizer
    from lmlab.io import read_json

    cfg = read_json(run / "config.json")
    sd = load_file(run / "glp.safetensors")
    net = Denoiser(DenoiserConfig(**cfg["net"]))
    glp = GLP(net, Normalizer(sd["normalizer.mean"], sd["normalizer.std"] ** 2, eps=0.0))
    try:
        glp.load_state_dict(sd)
    except RuntimeError as e:
        raise DataError(f"{run / 'glp.safetensors'} does not fit its config.json: {first_line(e)}",
                        "retrain, or restore the run's config.json") from None
    model, own = _store_identity(cfg.get("store"))
    if layer is not None and own is not None and layer != own:
        raise DataError(f"the GLP in {run} was trained on layer {own}, not layer {layer}",
                        f"use it with a store/model at layer {own}, or a GLP of layer {layer}")
    return glp.eval(), {"model_name": model, "layer": own, "store": cfg.get("store")}


def _download(spec: str) -> Path:
    """A hub id "org/name[/subfolder]" -> the local snapshot folder (huggingface_hub's normal cache)."""
    from huggingface_hub import snapshot_download

    parts = spec.split("/")
    repo, sub = "/".join(parts[:2]), "/".join(parts[2:])
    pre = f"{sub}/" if sub else ""
    first = [pre + f for f in ("config.yaml", "rep_statistics.pt", "final.safetensors")]
    try:
        root = Path(snapshot_download(repo, allow_patterns=first))
        if not (root / pre / "final.safetensors").is_file():  # an intermediate release: the epoch checkpoints
            root = Path(snapshot_download(repo, allow_patterns=[pre + "checkpoints/*"]))
    except Exception as e:  # offline, unknown repo, gated, ...: one line, not a traceback
        raise ModelNotFound(f"no local GLP at {spec}, and fetching it as a hub id failed ({type(e).__name__})",
                            "check the path, or the hub id and your network") from None
    return root / sub if sub else root


def resolve_glp(spec: str | Path, layer: int | None = None) -> GLP:
    """The GLP named by `spec` (run dir | official folder | hub id), eval mode, tagged with `.info` (GLPInfo).
    `layer`: the LLM layer it will be used at — picks a multi-layer checkpoint's statistics, and a GLP of
    another layer is refused."""
    from lmlab.glp.interop import read_official
    from lmlab.glp.net import n_params

    path = Path(spec)
    if (path / "glp.safetensors").is_file():
        kind = "run"
        glp, meta = _load_run(path, layer)
    elif path.is_dir():
        kind = "official"
        glp, meta = read_official(path, layer)
    elif not path.exists() and _HUB_ID.fullmatch(str(spec)) and not str(spec).startswith("."):
        kind, path = "hub", _download(str(spec))
        glp, meta = read_official(path, layer)
    else:
        raise DataError(f"no GLP at {spec}", _SPEC_HINT)
    glp.info = GLPInfo(kind, str(spec), str(path), meta["model_name"], meta["layer"], glp.net.cfg.d_in,
                       n_params(glp.net.cfg), meta.get("store"))
    return glp


load_glp = resolve_glp  # the name older callers use


def check_fits(glp: GLP, store) -> None:
    """A GLP of another width or layer than the store's activations is refused (one line, with a fix)."""
    info = glp.info
    if info.d_in != store.d_model:
        raise DataError(f"GLP {info.spec} has d_in={info.d_in} but the store {store.path} has d={store.d_model}",
                        "use a store of the GLP's model and layer (or a GLP trained on this one)")
    if info.layer is not None and info.layer != store.layer:
        raise DataError(f"GLP {info.spec} models layer {info.layer} but the store {store.path} is layer {store.layer}",
                        f"harvest a store at layer {info.layer} (lmlab acts harvest --layer {info.layer})")


def glp_context(spec: str | Path | None, store: str | Path | None):
    """(glp or None, store) — the store defaults to the one a run was trained on; an official checkpoint needs
    one passed. The GLP is checked against the store (`glp.info.describe()` says what was loaded; commands
    put it in their results as `glp_info` and the CLI prints it on stderr)."""
    from lmlab.acts.store import ActivationStore

    glp = None
    if spec is not None and store is None:
        glp = resolve_glp(spec)
        store = glp.info.store
        if store is None:
            raise ConfigError(f"the {glp.info.kind} GLP {spec} has no store of its own",
                              f"pass --store STORE (a store harvested at layer {glp.info.layer} of {glp.info.model})")
    if store is None:
        raise ConfigError("no activation store given", "pass --store STORE (or --glp RUN_DIR, whose store is used)")
    st = ActivationStore.open(store)
    if spec is not None:
        glp = glp or resolve_glp(spec, st.layer)
        check_fits(glp, st)
    return glp, st

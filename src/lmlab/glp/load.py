"""The one GLP loader: a trained GLP from an lmlab run directory, and the (GLP, activation store) pair that
steering and probing start from (the store defaults to the one the GLP was trained on)."""

from __future__ import annotations

from pathlib import Path

from lmlab.errors import ConfigError, DataError
from lmlab.glp.net import GLP, Denoiser, DenoiserConfig, Normalizer


def load_glp(run_dir: str | Path) -> GLP:
    """A trained GLP from an lmlab run directory (config.json + glp.safetensors)."""
    from safetensors.torch import load_file

    from lmlab.io import read_json

    cfg = read_json(Path(run_dir) / "config.json")
    sd = load_file(Path(run_dir) / "glp.safetensors")
    net = Denoiser(DenoiserConfig(**cfg["net"]))
    glp = GLP(net, Normalizer(sd["normalizer.mean"], sd["normalizer.std"] ** 2, eps=0.0))
    glp.load_state_dict(sd)
    return glp.eval()


def glp_context(glp_dir: str | Path | None, store: str | Path | None):
    """(glp or None, store) — the store defaults to the one the GLP was trained on (its config.json)."""
    from lmlab.acts.store import ActivationStore
    from lmlab.io import read_json

    glp = None
    if glp_dir is not None:
        if not (Path(glp_dir) / "glp.safetensors").is_file():
            raise DataError(f"no trained GLP in {glp_dir}", "pass a run directory written by `lmlab glp train`")
        glp = load_glp(glp_dir)
        store = store or read_json(Path(glp_dir) / "config.json")["store"]
    if store is None:
        raise ConfigError("no activation store given", "pass --store STORE (or --glp DIR, whose store is used)")
    st = ActivationStore.open(store)
    if glp is not None and glp.net.cfg.d_in != st.d_model:
        raise DataError(f"GLP d_in={glp.net.cfg.d_in} but the store has d={st.d_model}", "use the GLP's own store")
    return glp, st

"""SAELens's on-disk format in and out (sae-lens >= 6: `cfg.json` + `sae_weights.safetensors`), and
`load_sae`, the one SAE loader behind every `--sae` option.

SAELens computes, for a TopK SAE with apply_b_dec_to_input and no normalisation,
    f = ReLU(TopK((x - b_dec) W_enc + b_enc)),   x^ = f W_dec + b_dec      W_enc (d, n), W_dec (n, d)
on RAW activations x. lmlab trains in a scaled space x_n = s x (sae/model.py), so the export folds s in:
    W_enc' = s W_enc^T,  b_dec' = b_dec / s,  W_dec' = W_dec / s,  b_enc' = b_enc
— the pre-activations are unchanged, so the same latents fire with the same values. BatchTopK exports as
SAELens's `jumprelu` (its inference form, Bussmann et al.), with lmlab's threshold per latent. A SAELens folder
with apply_b_dec_to_input = false is imported by folding b_dec W_enc into b_enc; other input normalisations
and architectures are refused in one line.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lmlab.errors import DataError
from lmlab.sae.model import SAEConfig, SparseAutoencoder

CFG, WEIGHTS = "cfg.json", "sae_weights.safetensors"
SAELENS_VERSION = "6.54.12"  # the format version written (metadata.sae_lens_version >= 6 skips legacy shims)


def export_saelens(sae: SparseAutoencoder, out: str | Path, hook: dict | None = None) -> Path:
    """Write `sae` as a SAELens folder (raw-space weights, the input scale folded in); returns OUT."""
    from lmlab.io import save_safetensors, write_json

    if sae.cfg.variant not in ("topk", "batchtopk"):
        raise DataError(f"cannot export a {sae.cfg.variant} SAE", "export a topk or batchtopk SAE")
    out, s = Path(out), float(sae.scale)
    w = {"W_enc": (sae.W_enc.detach() * s).T.contiguous(), "b_enc": sae.b_enc.detach(),
         "W_dec": sae.W_dec.detach() / s, "b_dec": sae.b_dec.detach() / s}
    hook = hook or {}
    cfg = {"d_in": sae.cfg.d_in, "d_sae": sae.cfg.n_latents, "dtype": "float32", "device": "cpu",
           "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
           "metadata": {"sae_lens_version": SAELENS_VERSION, "model_name": hook.get("model"),
                        "hook_name": f"blocks.{hook['layer']}.hook_resid_post" if "layer" in hook else None,
                        "lmlab": {"variant": sae.cfg.variant, "k": sae.cfg.k, "layer": hook.get("layer")}}}
    if sae.cfg.variant == "topk":
        cfg.update(architecture="topk", k=sae.cfg.k, rescale_acts_by_decoder_norm=False)
    else:
        cfg.update(architecture="jumprelu")
        w["threshold"] = sae.threshold.detach().clone()
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(out / WEIGHTS, w)
    write_json(out / CFG, cfg)
    return out


def import_saelens(folder: str | Path) -> SparseAutoencoder:
    """A SAELens folder (topk or jumprelu) as an lmlab SparseAutoencoder working on the same raw activations."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CFG).is_file() or not (folder / WEIGHTS).is_file():
        missing = CFG if not (folder / CFG).is_file() else WEIGHTS
        raise DataError(f"{folder} is not a SAELens SAE folder (no {missing})",
                        f"give a folder with {CFG} and {WEIGHTS} (SAE.save_model writes both)")
    cfg = json.loads((folder / CFG).read_text())
    arch = cfg.get("architecture", "standard")
    if arch not in ("topk", "jumprelu"):
        raise DataError(f"{folder}: SAELens architecture {arch!r} is not supported", "use a topk or jumprelu SAE")
    if cfg.get("normalize_activations", "none") != "none" or cfg.get("rescale_acts_by_decoder_norm"):
        raise DataError(f"{folder}: input normalisation {cfg.get('normalize_activations')!r} / decoder-norm "
                        "rescaling is not supported", "fold it into the weights in SAELens first")
    w = load_file(str(folder / WEIGHTS))
    d, n = int(cfg["d_in"]), int(cfg["d_sae"])
    if tuple(w["W_enc"].shape) != (d, n) or tuple(w["W_dec"].shape) != (n, d):
        raise DataError(f"{folder}: weights of shape {tuple(w['W_enc'].shape)} do not fit d_in={d}, d_sae={n}",
                        "the cfg.json belongs to another SAE")
    k = int(cfg.get("k", 1)) if arch == "topk" else 1
    sae = SparseAutoencoder(SAEConfig(d_in=d, n_latents=n, k=k, variant="topk" if arch == "topk" else "jumprelu"))
    with torch.no_grad():
        b_dec = w["b_dec"].float()
        b_enc = w["b_enc"].float() if cfg.get("apply_b_dec_to_input", True) else w["b_enc"].float() + b_dec @ w["W_enc"].float()
        sae.W_enc.copy_(w["W_enc"].float().T)
        sae.W_dec.copy_(w["W_dec"].float())
        sae.b_enc.copy_(b_enc)
        sae.b_dec.copy_(b_dec)
        if arch == "jumprelu":
            sae.threshold.copy_(w["threshold"].float())
    return sae.eval()


def load_sae(path: str | Path) -> SparseAutoencoder:
    """An lmlab SAE run directory (sae.safetensors + sae.json) or a SAELens folder (cfg.json +
    sae_weights.safetensors) -> a module whose encode(x) / decode(f) work on the store's raw activations."""
    from safetensors.torch import load_file

    path = Path(path)
    if (path / "sae.safetensors").is_file() and (path / "sae.json").is_file():
        meta = json.loads((path / "sae.json").read_text())
        sae = SparseAutoencoder(SAEConfig(**meta["sae"]))
        sae.load_state_dict(load_file(str(path / "sae.safetensors")))
        return sae.eval()
    if (path / CFG).is_file():
        return import_saelens(path)
    if not path.exists():
        raise DataError(f"no SAE at {path}", "pass an lmlab SAE run directory (lmlab sae train) or a SAELens folder")
    raise DataError(f"{path} holds no SAE (neither sae.safetensors + sae.json nor {CFG})",
                    "pass a finished `lmlab sae train` run, or a SAELens folder with its cfg.json")


def sae_store(sae_path: str | Path, store: str | Path | None) -> Path:
    """The activation store an SAE is used with: the one given, else the one an lmlab SAE run was trained on (a
    SAELens folder names none: then it must be given)."""
    from lmlab.errors import ConfigError

    if store is not None:
        return Path(store)
    cfg = Path(sae_path) / "config.json"
    if not cfg.is_file():
        raise ConfigError("no activation store given", "pass --store STORE (a SAELens folder names none)")
    return Path(json.loads(cfg.read_text())["store"])

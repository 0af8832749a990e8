"""Export an lmlab GPT to a HF `LlamaForCausalLM` directory and import one back.

lmlab's parameter names are HF Llama's minus the `model.` prefix (lm_head excepted), so both directions
are a rename plus a config translation. An exported directory loads with
`transformers.AutoModelForCausalLM.from_pretrained(dir)` and gives the same logits (tests/lm/test_hf.py).
"""

from __future__ import annotations

from pathlib import Path

from lmlab.errors import DataError, ModelNotFound


def to_hf_config(cfg, tokenizer=None):
    """lmlab ModelConfig -> transformers.LlamaConfig."""
    from transformers import LlamaConfig

    special = {}
    if tokenizer is not None:
        special = dict(bos_token_id=tokenizer.eot_id, eos_token_id=tokenizer.eot_id, pad_token_id=tokenizer.pad_id)
    return LlamaConfig(
        vocab_size=cfg.vocab_size, hidden_size=cfg.d_model, intermediate_size=cfg.d_ff,
        num_hidden_layers=cfg.n_layer, num_attention_heads=cfg.n_head, num_key_value_heads=cfg.n_kv_head,
        head_dim=cfg.head_dim, max_position_embeddings=cfg.max_seq_len, rms_norm_eps=cfg.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta},
        tie_word_embeddings=cfg.tie_embeddings, attention_bias=False, mlp_bias=False, hidden_act="silu",
        initializer_range=cfg.init_std, **special)


def from_hf_config(hf_cfg):
    """transformers.LlamaConfig -> lmlab ModelConfig (only plain Llama features are supported)."""
    from lmlab.lm.model import ModelConfig

    if getattr(hf_cfg, "model_type", "llama") != "llama":
        raise ModelNotFound(f"model_type '{hf_cfg.model_type}' is not Llama", "import only Llama-architecture models")
    rope = getattr(hf_cfg, "rope_parameters", None) or {}
    if rope.get("rope_type", "default") != "default":
        raise ModelNotFound(f"rope_type '{rope['rope_type']}' is not supported", "use a model with default RoPE")
    return ModelConfig(
        vocab_size=hf_cfg.vocab_size, d_model=hf_cfg.hidden_size, n_layer=hf_cfg.num_hidden_layers,
        n_head=hf_cfg.num_attention_heads, n_kv_head=hf_cfg.num_key_value_heads, d_ff=hf_cfg.intermediate_size,
        max_seq_len=hf_cfg.max_position_embeddings, rope_theta=rope.get("rope_theta", 10000.0),
        norm_eps=hf_cfg.rms_norm_eps, tie_embeddings=bool(hf_cfg.tie_word_embeddings))


def to_hf_model(model, tokenizer=None):
    """Build an in-memory `LlamaForCausalLM` holding a copy of `model`'s weights."""
    import torch
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM(to_hf_config(model.cfg, tokenizer))
    sd = {(k if k.startswith("lm_head.") else "model." + k): v for k, v in model.export_state().items()}
    missing, unexpected = hf.load_state_dict(sd, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and model.cfg.tie_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"HF export key mismatch: missing={missing} unexpected={unexpected}")
    with torch.no_grad():
        hf.tie_weights()
    return hf.eval()


def from_hf_model(hf):
    """Build an lmlab GPT from a loaded `LlamaForCausalLM`."""
    from lmlab.lm.model import GPT

    model = GPT(from_hf_config(hf.config))
    sd = {k.removeprefix("model."): v for k, v in hf.state_dict().items() if "rotary_emb" not in k}
    if model.cfg.tie_embeddings:
        sd.pop("lm_head.weight", None)
    model.import_state(sd)
    return model


def export_hf(run_dir: str | Path, out_dir: str | Path) -> Path:
    """Write an lmlab run's final model + tokenizer as a HF directory (atomically: temp dir + rename)."""
    import os
    import shutil

    from lmlab.lm.train import load_run_model

    model, tok = load_run_model(run_dir)
    out = Path(out_dir)
    tmp = out.with_name(out.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    to_hf_model(model, tok).save_pretrained(tmp)
    tok.to_hf().save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out


def load_run_as_hf(run_dir: str | Path):
    """(HF LlamaForCausalLM, HF tokenizer) for an lmlab run directory (used by models.load_causal_lm)."""
    from lmlab.lm.train import load_run_model

    if not (Path(run_dir) / "model.safetensors").is_file():
        raise DataError(f"{run_dir} has no model.safetensors", "train it first (lmlab lm train) or pick another run")
    model, tok = load_run_model(run_dir)
    return to_hf_model(model, tok), tok.to_hf()

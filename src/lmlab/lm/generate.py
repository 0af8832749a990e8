"""Text continuation for any model spec (through HF `generate`, which all specs load into)."""

from __future__ import annotations


def complete(spec: str, prompt: str, max_new_tokens: int = 40, temperature: float = 0.0, seed: int = 0,
             loaded=None) -> str:
    """Continue `prompt`; temperature 0 is greedy. `loaded` = an already loaded (model, tokenizer)."""
    import torch

    from lmlab.models import load_causal_lm

    model, tok = loaded or load_causal_lm(spec)
    torch.manual_seed(seed)
    enc = tok(prompt, return_tensors="pt")
    kw = dict(do_sample=temperature > 0, max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id or tok.eos_token_id)
    if temperature > 0:
        kw["temperature"] = temperature
    with torch.no_grad():
        out = model.generate(**enc, **kw)
    return tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)

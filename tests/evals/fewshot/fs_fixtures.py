"""Shared helpers for the few-shot tests: a tiny Llama (random or all-zero weights) on SmolLM2's tokenizer."""

from __future__ import annotations

import functools
import json
from pathlib import Path


@functools.lru_cache(maxsize=1)
def tokenizer():
    from transformers import AutoTokenizer

    from lmlab.models import smollm2_dir

    return AutoTokenizer.from_pretrained(smollm2_dir(), local_files_only=True)


def tiny_llama(seed: int = 0, zero: bool = False, max_pos: int = 512):
    """A 2-layer Llama with SmolLM2's vocabulary; `zero=True` makes every next-token distribution uniform."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tokenizer()
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_pos,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    if zero:  # logits = 0 everywhere -> log p = -ln V for every token, whatever the context
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
    return model, tok


def write_mc_task(folder: Path, docs: list[dict], **spec) -> Path:
    """A user multiple-choice task: test.jsonl + train.jsonl (same docs) + task.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("test", "train"):
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    base = {"name": "mini_mc", "output_type": "multiple_choice", "template": "Question: {q}\nAnswer:",
            "choices": "choices", "gold": "label", "fewshot_split": "test", "data": {"test": "test.jsonl", "train": "train.jsonl"}}
    base.update(spec)
    import yaml

    path = folder / "task.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


MC_DOCS = [
    {"q": "What colour is the sky?", "choices": ["blue", "green", "a deep red colour"], "label": 0},
    {"q": "How many legs has a spider?", "choices": ["eight", "six", "ten"], "label": 0},
    {"q": "Which is a fruit?", "choices": ["a carrot", "an apple", "café"], "label": 1},
    {"q": "What do bees make?", "choices": ["honey", "milk", "silk threads"], "label": 0},
    {"q": "Where do fish live?", "choices": ["in trees", "in water"], "label": 1},
    {"q": "What is frozen water?", "choices": ["steam", "ice", "naïve glass"], "label": 1},
]

"""Layer convention, read/write hooks and the stop-after-layer fast path, on the real SmolLM2 and GPT-2."""

import pytest
import torch

from lmlab.acts.hooks import (
    add_to_residual,
    check_layer,
    decoder_blocks,
    forward_to_layer,
    read_residual,
    write_residual,
)
from lmlab.errors import ConfigError, ModelNotFound


@pytest.fixture(scope="module")
def smol():
    from lmlab.models import load_causal_lm

    return load_causal_lm("smollm2")


@pytest.fixture(scope="module")
def batch(smol):
    _, tok = smol
    enc = tok(["The heart pumps blood.", "A dictionary of English words and their meanings"],
              return_tensors="pt", padding=True)
    return enc["input_ids"], enc["attention_mask"]


@pytest.mark.parametrize("layer", [0, 15, 28])
def test_layer_L_is_hf_hidden_states_L_plus_1_exactly(smol, batch, layer):
    model, _ = smol
    ids, mask = batch
    with torch.inference_mode():
        hs = model(ids, attention_mask=mask, output_hidden_states=True).hidden_states
        ours = forward_to_layer(model, ids, layer, attention_mask=mask)
    assert torch.equal(ours, hs[layer + 1])


def test_last_layer_is_the_block_output_not_the_final_norm(smol, batch):
    model, _ = smol
    ids, mask = batch
    last = len(decoder_blocks(model)) - 1
    with torch.inference_mode():
        hs = model(ids, attention_mask=mask, output_hidden_states=True).hidden_states
        ours = forward_to_layer(model, ids, last, attention_mask=mask)
        normed = model.model.norm(ours)
    assert not torch.allclose(ours, hs[last + 1])  # HF's last hidden state is normed ...
    assert torch.allclose(normed, hs[last + 1], atol=1e-5)  # ... ours is its input


def _hook_counts(model):
    return [len(b._forward_hooks) for b in decoder_blocks(model)]


def test_fast_path_runs_no_later_block(smol, batch):
    model, _ = smol
    before = _hook_counts(model)
    ran = []
    handle = decoder_blocks(model)[16].register_forward_hook(lambda *a: ran.append(1))
    try:
        with torch.inference_mode():
            forward_to_layer(model, batch[0], 15, attention_mask=batch[1])
    finally:
        handle.remove()
    assert ran == [] and _hook_counts(model) == before


def test_read_and_write_hooks_are_removed_even_on_error(smol, batch):
    model, _ = smol
    ids, mask = batch
    before = _hook_counts(model)
    with torch.inference_mode():
        base = model(ids, attention_mask=mask).logits
        with read_residual(model, 10) as got:
            model(ids, attention_mask=mask)
        assert len(got) == 1 and got[0].shape == (*ids.shape, 576)
        v = torch.randn(576)
        with add_to_residual(model, 10, v, scale=4.0):
            steered = model(ids, attention_mask=mask).logits
        assert not torch.allclose(steered, base)
        with pytest.raises(RuntimeError, match="boom"), write_residual(model, 10, lambda h: h * 0):
            raise RuntimeError("boom")
        assert torch.equal(model(ids, attention_mask=mask).logits, base)  # nothing left behind
    assert _hook_counts(model) == before


def test_write_hook_acts_during_generation(smol):
    model, tok = smol
    enc = tok("The capital of France is", return_tensors="pt")
    with torch.inference_mode():
        plain = model.generate(**enc, max_new_tokens=5, do_sample=False)
        with add_to_residual(model, 12, torch.randn(576, generator=torch.Generator().manual_seed(0)), scale=30.0):
            steered = model.generate(**enc, max_new_tokens=5, do_sample=False)
    assert not torch.equal(plain, steered)


def test_layer_out_of_range(smol):
    with pytest.raises(ConfigError, match="0..29"):
        check_layer(smol[0], 30)
    with pytest.raises(ConfigError):
        check_layer(smol[0], -1)


def test_gpt2_architecture_is_hooked():
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    m = GPT2LMHeadModel(GPT2Config(n_layer=3, n_embd=64, n_head=4, vocab_size=100, n_positions=32)).eval()
    ids = torch.randint(0, 100, (2, 10))
    with torch.inference_mode():
        hs = m(ids, output_hidden_states=True).hidden_states
        assert torch.equal(forward_to_layer(m, ids, 1), hs[2])


def test_lmlab_gpt_is_hooked():
    """On lmlab's own GPT, layer L is the output of block L by the convention's values, checked against the
    same weights in HF's Llama: hidden_states[L+1] for every block but the last, whose HF state is normed."""
    from lmlab.lm.hf import to_hf_model
    from lmlab.lm.model import GPT, ModelConfig

    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=50, d_model=32, n_layer=3, n_head=2, max_seq_len=16)).eval()
    hf = to_hf_model(m)
    ids = torch.randint(0, 50, (2, 8), generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        hs = hf(ids, output_hidden_states=True).hidden_states
        ours = [forward_to_layer(m, ids, layer) for layer in range(3)]
    assert len(hs) == 4 and ours[0].shape == (2, 8, 32)
    for layer in (0, 1):
        torch.testing.assert_close(ours[layer], hs[layer + 1], rtol=1e-4, atol=1e-5)
        assert not torch.allclose(ours[layer], hs[layer], atol=1e-3)  # one block later than HF's index L
    assert not torch.allclose(ours[2], hs[3], atol=1e-3)
    with torch.inference_mode():
        torch.testing.assert_close(m.norm(ours[2]), hs[3], rtol=1e-4, atol=1e-5)  # HF's last state is normed


def test_unknown_architecture_is_one_clear_error():
    with pytest.raises(ModelNotFound, match="cannot find the decoder blocks"):
        decoder_blocks(torch.nn.Linear(3, 3))

"""Reference equivalence and exact sizes/FLOPs of lm/model.py."""

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lmlab.errors import ConfigError
from lmlab.lm.hf import export_hf, from_hf_model, to_hf_model  # noqa: F401
from lmlab.lm.model import GPT, ModelConfig

CONFIGS = {
    "tied-mha": ModelConfig(vocab_size=301, d_model=64, n_layer=2, n_head=4, max_seq_len=48, init_std=0.3),
    "untied-gqa": ModelConfig(vocab_size=301, d_model=96, n_layer=3, n_head=6, n_kv_head=2, max_seq_len=48,
                              tie_embeddings=False, rope_theta=500.0, init_std=0.3),
}


@pytest.mark.parametrize("name", CONFIGS)
def test_hf_llama_logits_match_fp32(name):
    """Exported LlamaForCausalLM gives lmlab's logits to 1e-5 on random input (and imports back exactly)."""
    torch.manual_seed(0)
    m = GPT(CONFIGS[name]).eval()
    hf = to_hf_model(m)
    x = torch.randint(0, 301, (3, 48))
    with torch.no_grad():
        ours, theirs = m(x), hf(x).logits
        back = from_hf_model(hf).eval()(x)
    assert ours.abs().max() > 1.0  # non-trivial logits, so the comparison means something
    assert (ours - theirs).abs().max().item() < 1e-5
    assert torch.equal(back, ours)


def test_hf_export_dir_loads_with_automodel(tmp_path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    m = GPT(CONFIGS["untied-gqa"]).eval()
    to_hf_model(m).save_pretrained(tmp_path / "hf")
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    x = torch.randint(0, 301, (2, 20))
    with torch.no_grad():
        assert (m(x) - hf(x).logits).abs().max().item() < 1e-5


def _closed_form_nonembed(c: ModelConfig) -> int:
    attn = c.d_model * c.head_dim * (2 * c.n_head + 2 * c.n_kv_head)
    return c.n_layer * (attn + 3 * c.d_model * c.d_ff + 2 * c.d_model) + c.d_model


@pytest.mark.parametrize("name", CONFIGS)
def test_parameter_counts(name):
    c = CONFIGS[name]
    m = GPT(c)
    s = m.sizes()
    assert s.n_total == sum(p.numel() for p in m.parameters())
    assert s.n_embedding == c.vocab_size * c.d_model
    assert s.n_nonembed == _closed_form_nonembed(c)
    assert s.n_total == s.n_nonembed + s.n_embedding * (1 if c.tie_embeddings else 2)
    assert s.n_matmul == s.n_nonembed - c.d_model * (2 * c.n_layer + 1) + s.n_embedding


@pytest.mark.parametrize("name", CONFIGS)
def test_flops_per_token_matches_flop_counter(name):
    """Matmul FLOPs from torch's FlopCounterMode (forward and forward+backward) + attention from an explicit
    QK^T / AV computation of the same shapes equal our closed form."""
    c = CONFIGS[name]
    m = GPT(c)
    B, T = 2, c.max_seq_len
    x = torch.randint(0, c.vocab_size, (B, T))
    q = torch.randn(B, c.n_head, T, c.head_dim, requires_grad=True)
    k = torch.randn(B, c.n_head, T, c.head_dim, requires_grad=True)
    with FlopCounterMode(display=False) as fc:
        m(x)
    with FlopCounterMode(display=False) as fa:  # full (non-causal) attention, per layer
        ((q @ k.transpose(-1, -2)).softmax(-1) @ k)
    fwd_measured = fc.get_total_flops() + c.n_layer * fa.get_total_flops()
    assert m.flops_per_token(T, training=False) * B * T == fwd_measured
    with FlopCounterMode(display=False) as fc:
        m(x).sum().backward()
    with FlopCounterMode(display=False) as fa:
        ((q @ k.transpose(-1, -2)).softmax(-1) @ k).sum().backward()
    assert m.flops_per_token(T) * B * T == fc.get_total_flops() + c.n_layer * fa.get_total_flops()


def test_bad_shapes_are_config_errors():
    with pytest.raises(ConfigError, match="divide"):
        ModelConfig(d_model=65, n_head=4)
    with pytest.raises(ConfigError, match="divide"):
        ModelConfig(d_model=64, n_head=4, n_kv_head=3)


def test_summary_mentions_counts():
    s = GPT(CONFIGS["tied-mha"]).summary()
    assert "params" in s and "non-embedding" in s and "MFLOPs/token" in s


@pytest.mark.parametrize("name", CONFIGS)
@pytest.mark.parametrize("masked", [False, True])
def test_fused_loss_equals_reference(name, masked):
    """model(x, y, w) (LinearCrossEntropy) = lm_loss(model(x), y, w): value and every gradient, fp32;
    and under bf16 autocast within bf16 rounding."""
    from lmlab.lm.model import lm_loss

    torch.manual_seed(2)
    m = GPT(CONFIGS[name])
    x, y = torch.randint(0, 301, (3, 40)), torch.randint(0, 301, (3, 40))
    w = (torch.rand(3, 40) > 0.3).float() if masked else None
    ref = lm_loss(m(x), y, w)
    ref.backward()
    g_ref = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    fused = m(x, y, w)
    fused.backward()
    assert abs(fused.item() - ref.item()) < 1e-5
    for a, p in zip(g_ref, m.parameters()):
        assert (a - p.grad).abs().max().item() < 1e-6
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ref_bf, fused_bf = lm_loss(m(x), y, w), m(x, y, w)
    assert abs(fused_bf.item() - ref_bf.item()) < 2e-2

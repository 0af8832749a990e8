"""GPU checks (marker `gpu`; excluded by default, skipped without CUDA): the same guarantees on a device."""

import pytest
import torch

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_fused_loss_matches_reference_on_cuda():
    from lmlab.lm.model import GPT, ModelConfig, lm_loss

    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=4096, d_model=256, n_layer=2, n_head=4, max_seq_len=128)).cuda()
    x, y = torch.randint(0, 4096, (4, 128), device="cuda"), torch.randint(0, 4096, (4, 128), device="cuda")
    ref = lm_loss(m(x), y)
    ref.backward()
    g = [p.grad.clone() for p in m.parameters()]
    m.zero_grad()
    fused = m(x, y)
    fused.backward()
    assert abs(fused.item() - ref.item()) < 1e-4
    assert all((a - p.grad).abs().max() < 1e-5 for a, p in zip(g, m.parameters()))


def test_train_bf16_compiled_on_cuda(tiny_data, tmp_path):
    from lmlab.config import apply_overrides, get_preset
    from lmlab.lm.train import train

    cfg = apply_overrides(get_preset("lm", "tiny"), [f"data=\"{tiny_data}\"", "device=cuda", "dtype=bf16",
                                                     "compile=true", "max_steps=30"])
    s = train(cfg, tmp_path / "run", progress=False)
    assert s["device"].startswith("cuda") and s["final_eval"]["loss"] < s["first_loss"] - 0.5 and s["mfu"] > 0


def test_forward_to_layer_on_cuda_matches_hidden_states():
    from lmlab.acts.hooks import forward_to_layer
    from lmlab.models import load_causal_lm

    model, tok = load_causal_lm("smollm2", device="cuda")
    ids = tok("The heart pumps blood.", return_tensors="pt")["input_ids"].cuda()
    with torch.inference_mode():
        assert torch.equal(forward_to_layer(model, ids, 15), model(ids, output_hidden_states=True).hidden_states[16])

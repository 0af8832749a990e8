"""The fused LM-head cross-entropy (model(x, y, ...)): ignore_index=-100 as F.cross_entropy, and no gradient
work (no (N, V) logit-gradient buffer, no gradient matmuls) under torch.no_grad()."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from lmlab.lm import model as M
from lmlab.lm.model import GPT, ModelConfig

CFG = ModelConfig(vocab_size=301, d_model=64, n_layer=2, n_head=4, max_seq_len=48, init_std=0.3)


def _batch(seed=0):
    torch.manual_seed(seed)
    x, y = torch.randint(0, 301, (3, 40)), torch.randint(0, 301, (3, 40))
    y[0, :7] = -100  # e.g. padding / prompt positions
    y[2, 30:] = -100
    return x, y


def _grads(m):
    return [p.grad.clone() for p in m.parameters()]


def test_ignore_index_value_and_gradients_equal_f_cross_entropy():
    x, y = _batch()
    m = GPT(CFG)
    ref = F.cross_entropy(m(x).flatten(0, 1), y.flatten(), ignore_index=-100)  # mean over non-ignored targets
    ref.backward()
    g_ref = _grads(m)
    m.zero_grad()
    fused = m(x, y)
    fused.backward()
    assert fused.item() == pytest.approx(ref.item(), abs=1e-5)
    for a, p in zip(g_ref, m.parameters()):
        assert (a - p.grad).abs().max().item() < 1e-6
    # lm_loss (the unfused reference) agrees too, and a custom ignore_index works the same way
    assert M.lm_loss(m(x), y).item() == pytest.approx(ref.item(), abs=1e-5)
    y2 = torch.where(y == -100, torch.full_like(y, 7), y)
    ref7 = F.cross_entropy(m(x).flatten(0, 1), y2.flatten(), ignore_index=7)
    assert m(x, y2, ignore_index=7).item() == pytest.approx(ref7.item(), abs=1e-5)


def test_ignore_index_with_weights_and_denom():
    x, y = _batch(1)
    m = GPT(CFG)
    w = (torch.rand(3, 40) > 0.3).float()
    ce = F.cross_entropy(m(x).flatten(0, 1), y.flatten(), ignore_index=-100, reduction="none")
    ref = (ce * w.flatten()).sum() / 50.0
    ref.backward()
    g_ref = _grads(m)
    m.zero_grad()
    fused = m(x, y, w, 50.0)
    fused.backward()
    assert fused.item() == pytest.approx(ref.item(), abs=1e-5)
    for a, p in zip(g_ref, m.parameters()):
        assert (a - p.grad).abs().max().item() < 1e-6


class _Ops(TorchDispatchMode):
    """Records (op name, output shapes) of every aten op."""

    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        outs = out if isinstance(out, (tuple, list)) else [out]
        self.ops.append((str(func), [tuple(o.shape) for o in outs if isinstance(o, torch.Tensor)]))
        return out


def _head_ops(m, x, y, monkeypatch):
    """Ops of the fused head only (hidden states computed first), with chunks smaller than the batch."""
    monkeypatch.setattr(M.LinearCrossEntropy, "CHUNK_ELEMENTS", 301 * 16)  # 16 rows per chunk, N = 120
    h = m.hidden(x).flatten(0, 1)
    with _Ops() as rec:
        loss = M.linear_cross_entropy(h, m.lm_head.weight, y.flatten())
    return loss, rec.ops


def test_no_gradient_work_under_no_grad(monkeypatch):
    x, y = _batch()
    m = GPT(CFG)
    N, V = y.numel(), CFG.vocab_size
    big = lambda ops: [o for o in ops if any(s == (N, V) or s == (V, CFG.d_model) for s in o[1])]  # noqa: E731
    mms = lambda ops: sum("mm" in name for name, _ in ops)  # noqa: E731
    # with grad (the detector sees the work): an (N, V) gradient buffer and two extra gradient matmuls
    loss_g, ops_g = _head_ops(m, x, y, monkeypatch)
    assert big(ops_g) and mms(ops_g) == 8 + 2
    with torch.no_grad():
        hs = m.hidden(x).flatten(0, 1)
        loss_n, ops_n = _head_ops(m, x, y, monkeypatch)
    assert not big(ops_n), big(ops_n)  # no logit-gradient buffer, no grad_W
    assert mms(ops_n) == 8  # one logits matmul per chunk (120 rows / 16), nothing else
    assert not loss_n.requires_grad and loss_n.item() == pytest.approx(loss_g.item(), abs=1e-6)
    with torch.no_grad():  # and the model's own training path takes it too, with the same value
        assert m(x, y).item() == pytest.approx(F.cross_entropy(m.lm_head(hs), y.flatten()).item(), abs=1e-5)


def test_eval_mode_params_without_grad_take_the_loss_only_path(monkeypatch):
    x, y = _batch()
    m = GPT(CFG).requires_grad_(False)
    called = []
    monkeypatch.setattr(M.LinearCrossEntropy, "apply", lambda *a: called.append(1))
    loss = m(x, y)
    assert not called and torch.isfinite(loss)

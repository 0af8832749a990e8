"""Token filtering in the trainer: masked positions provably contribute no gradient."""

import pytest
import torch

from lmlab.errors import ConfigError
from lmlab.lm.model import GPT, ModelConfig, lm_loss
from lmlab.lm.train import TrainConfig, filter_batch

V, HIDDEN = 40, 1


def _toy():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(3, V, (2, 12), generator=g)
    y = torch.randint(3, V, (2, 12), generator=g)
    sx = torch.zeros(2, 12)
    sy = torch.zeros(2, 12)
    sx[0, 3:6] = 0.9  # a flagged span in the inputs ...
    sy[0, 2:5] = 0.9  # ... which is the same span seen as targets (shifted by one)
    sx[1, 7] = 0.6
    sy[1, 6] = 0.6
    return x, y, sx, sy


def _grads(cfg, x, y, sx, sy):
    torch.manual_seed(0)
    m = GPT(ModelConfig(vocab_size=V, d_model=32, n_layer=1, n_head=2, max_seq_len=12))
    xx, yy, w = filter_batch(cfg, x, y, sx, sy, HIDDEN)
    logits = m(xx)
    logits.retain_grad()
    lm_loss(logits, yy, w).backward()  # the reference path, to see the gradient on each logit
    m.zero_grad()
    m(xx, yy, w).backward()  # the trainer's fused path: parameter gradients
    return logits.grad, torch.cat([p.grad.flatten() for p in m.parameters()]), w


@pytest.mark.parametrize("mode,expected", [("input", "sx"), ("target", "sy"), ("union", "both")])
def test_masked_positions_get_no_gradient(mode, expected):
    x, y, sx, sy = _toy()
    cfg = TrainConfig(model=ModelConfig(vocab_size=V), mask=mode, mask_threshold=0.5)
    glogits, gparams, w = _grads(cfg, x, y, sx, sy)
    flagged = {"sx": sx >= 0.5, "sy": sy >= 0.5, "both": (sx >= 0.5) | (sy >= 0.5)}[expected]
    assert torch.equal(w == 0, flagged)
    # (1) the loss's gradient w.r.t. the logits at masked positions is exactly zero, non-zero elsewhere
    assert torch.all(glogits[flagged] == 0) and torch.all(glogits[~flagged].abs().sum(-1) > 0)
    # (2) changing the target at a masked position leaves every parameter gradient bit-identical ...
    y2 = y.clone()
    y2[flagged] = (y2[flagged] + 7) % V
    assert torch.equal(_grads(cfg, x, y2, sx, sy)[1], gparams)
    # (3) ... while changing one unmasked target changes them (the test can fail)
    y3 = y.clone()
    pos = (~flagged).nonzero()[0]
    y3[pos[0], pos[1]] = (y3[pos[0], pos[1]] + 1) % V
    assert not torch.equal(_grads(cfg, x, y3, sx, sy)[1], gparams)


def test_removal_replaces_flagged_tokens_with_hidden():
    x, y, sx, sy = _toy()
    cfg = TrainConfig(model=ModelConfig(vocab_size=V), mask="input", removal=True)
    xx, yy, w = filter_batch(cfg, x, y, sx, sy, HIDDEN)
    assert torch.all(xx[sx >= 0.5] == HIDDEN) and torch.all(xx[sx < 0.5] == x[sx < 0.5])
    assert torch.all(yy[sy >= 0.5] == HIDDEN)
    # input-keyed (paper's code): the prediction of <|hidden|> right before a span is trained
    assert w[0, 2] == 1 and yy[0, 2] == HIDDEN
    # union-keyed: it is not
    _, yy_u, w_u = filter_batch(TrainConfig(model=ModelConfig(vocab_size=V), mask="union", removal=True),
                                x, y, sx, sy, HIDDEN)
    assert w_u[0, 2] == 0 and torch.all(w_u[yy_u == HIDDEN] == 0)


def test_no_mask_is_identity_and_removal_needs_mask():
    x, y, sx, sy = _toy()
    xx, yy, w = filter_batch(TrainConfig(), x, y, sx, sy, HIDDEN)
    assert xx is x and yy is y and w is None
    with pytest.raises(ConfigError, match="removal"):
        TrainConfig(removal=True)


def test_global_denominator_makes_microbatches_add_up():
    """Per-micro-batch losses divided by the global count sum to the global masked mean."""
    x, y, sx, sy = _toy()
    cfg = TrainConfig(model=ModelConfig(vocab_size=V), mask="union")
    _, _, w = filter_batch(cfg, x, y, sx, sy, HIDDEN)
    logits = torch.randn(2, 12, V)
    full = lm_loss(logits, y, w)
    parts = sum(lm_loss(logits[i:i + 1], y[i:i + 1], w[i:i + 1], denom=w.sum().item()) for i in range(2))
    assert torch.allclose(full, parts, atol=1e-6)

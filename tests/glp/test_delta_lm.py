"""ΔLM on the real SmolLM2: splicing leaves the loss unchanged for the identity, hurts for mean ablation,
and the GLP / Gaussian-prior reconstructions run end to end."""

import numpy as np
import pytest
import torch

from lmlab.acts.splice import lm_loss_spliced
from lmlab.glp import evaluate as E
from lmlab.glp.load import load_glp


@pytest.fixture(scope="module")
def small_glp(tmp_path_factory):
    from lmlab.acts.harvester import HarvestConfig, harvest
    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp.train import train_glp

    root = tmp_path_factory.mktemp("dlm")
    harvest(HarvestConfig(layer=7, tokens=3000, out=str(root / "s"), seq_len=64, batch=8, dtype="fp32",
                          device="cpu"), progress=False)
    cfg = apply_overrides(get_preset("glp", "tiny"), [f'store="{root / "s"}"', "max_steps=30", "dtype=fp32",
                                                      "batch_size=128", "eval_rows=64"])
    train_glp(cfg, root / "g", progress=False)
    return load_glp(root / "g"), root / "s"


def test_identity_splice_is_free_and_mean_ablation_hurts(small_glp):
    from lmlab.acts.positions import encode_docs
    from lmlab.data.corpus import iter_documents
    from lmlab.models import load_causal_lm

    glp, _ = small_glp
    model, tok = load_causal_lm("smollm2")
    enc = encode_docs(tok, [d.text for _, d in zip(range(6), iter_documents(None, split="val"))], 48)
    base = lm_loss_spliced(model, tok, enc, 7, None, 3)
    assert lm_loss_spliced(model, tok, enc, 7, lambda h: h, 3) == pytest.approx(base, abs=1e-6)
    mean = lm_loss_spliced(model, tok, enc, 7, lambda h: glp.normalizer.mean.expand_as(h), 3)
    assert mean > base + 0.5


def test_delta_lm_reports_every_condition(small_glp):
    glp, store = small_glp
    out = E.delta_lm(glp, store, n_docs=6, seq_len=48, batch=3)
    # the base loss, computed apart: one unpadded forward per document, HF's own mean loss, token-weighted
    from lmlab.acts.positions import encode_docs
    from lmlab.data.corpus import iter_documents
    from lmlab.models import load_causal_lm

    model, tok = load_causal_lm("smollm2")
    enc = encode_docs(tok, [d.text for _, d in zip(range(6), iter_documents(None, split="val"))], 48)
    with torch.no_grad():
        losses = [float(model(torch.tensor([e]), labels=torch.tensor([e])).loss) * (len(e) - 1) for e in enc]
    n = sum(len(e) - 1 for e in enc)
    assert out["n_docs"] == 6 and out["n_tokens"] == n
    assert out["base_loss"] == pytest.approx(sum(losses) / n, rel=1e-4)
    assert set(out) >= {"delta_glp_10step", "delta_glp_1step", "delta_gaussian_prior", "delta_mean_ablation"}
    assert out["delta_mean_ablation"] > out["delta_gaussian_prior"] > 0  # the Gaussian prior keeps information


def test_gaussian_posterior_mean_is_exact_in_1d():
    """For z0 ~ N(0, c), z_t = a z0 + s eps: E[z0 | z_t] = a c z_t / (a^2 c + s^2)."""
    from lmlab.glp.net import GLP, Denoiser, DenoiserConfig, Normalizer

    glp = GLP(Denoiser(DenoiserConfig(d_in=1, d_model=4, d_mlp=4, n_layers=1)), Normalizer(torch.zeros(1), torch.ones(1), eps=0))
    h = torch.tensor([[2.0]])
    out = E.recon_gaussian(glp, h, torch.tensor([[4.0]], dtype=torch.float64), sigma_start=0.5, seed=0)
    eps = torch.randn(1, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    zt = 0.5 * 2.0 + 0.5 * eps
    assert out.item() == pytest.approx((0.5 * 4.0 / (0.25 * 4.0 + 0.25) * zt).item(), rel=1e-5)


def test_delta_lm_condition_subset_and_per_document_sums_agree_with_the_means(small_glp):
    glp, store = small_glp
    full = E.delta_lm(glp, store, n_docs=6, seq_len=48, batch=3)
    sub = E.delta_lm(glp, store, n_docs=6, seq_len=48, batch=3, conds=("glp_1step",), per_doc=True)
    assert set(k for k in sub if k.startswith("delta_")) == {"delta_glp_1step"}
    assert sub["delta_glp_1step"] == pytest.approx(full["delta_glp_1step"], abs=1e-9)  # same noise, same docs
    d = sub["per_doc"]
    assert len(d["n"]) == len(d["base"]) == len(d["glp_1step"]) == 6
    assert (sum(d["glp_1step"]) - sum(d["base"])) / sum(d["n"]) == pytest.approx(sub["delta_glp_1step"], rel=1e-9)
    with pytest.raises(Exception, match="unknown ΔLM condition"):
        E.delta_lm(glp, store, n_docs=2, conds=("glp_3step",))


@pytest.fixture(scope="module")
def context_glp(small_glp, tmp_path_factory):
    """A tiny sequence-aware GLP (context 2) on the same harvested store."""
    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp.train import train_glp

    store = small_glp[1]
    out = tmp_path_factory.mktemp("dlmctx") / "g"
    cfg = apply_overrides(get_preset("glp", "tiny"), [f'store="{store}"', "max_steps=30", "dtype=fp32",
                                                      "batch_size=128", "eval_rows=64", "net.context=2"])
    train_glp(cfg, out, progress=False)
    return load_glp(out), store


def test_a_splice_that_wants_sel_gets_the_selected_rows_and_the_context_prior_runs(context_glp):
    """fn.wants_sel: called as fn(rows, sel) with rows = h[sel] (doc-major) — the identity is still free; a
    context GLP's ΔLM runs end to end, its reconstructions conditioned on the real preceding rows."""
    from lmlab.acts.positions import encode_docs
    from lmlab.data.corpus import iter_documents
    from lmlab.models import load_causal_lm

    glp, store = context_glp
    model, tok = load_causal_lm("smollm2")
    enc = encode_docs(tok, [d.text for _, d in zip(range(6), iter_documents(None, split="val"))], 48)
    seen = []

    def ident(h, sel):
        seen.append((len(h), int(sel.sum()), sel.shape))
        return h

    ident.wants_sel = True
    base = lm_loss_spliced(model, tok, enc, 7, None, 3)
    assert lm_loss_spliced(model, tok, enc, 7, ident, 3) == pytest.approx(base, abs=1e-6)
    assert len(seen) == 2 and all(n == s and shape[0] == 3 for n, s, shape in seen)
    out = E.delta_lm(glp, store, n_docs=6, seq_len=48, batch=3, conds=("glp_1step", "mean_ablation"))
    assert 0 < out["delta_glp_1step"] < out["delta_mean_ablation"] + 5 and glp.net.cfg.context == 2
    with pytest.raises(Exception, match="preceding positions"):
        E.recon_glp(glp, torch.zeros(4, glp.net.cfg.d_in))


def test_delta_lm_reuses_given_base_losses_and_refuses_those_of_other_documents(small_glp):
    glp, store = small_glp
    first = E.delta_lm(glp, store, n_docs=4, seq_len=48, batch=2, conds=("glp_1step",), per_doc=True)
    d = first["per_doc"]
    again = E.delta_lm(glp, store, n_docs=4, seq_len=48, batch=2, conds=("glp_1step",), per_doc=True,
                       base=(d["base"], d["n"]))
    assert again["delta_glp_1step"] == pytest.approx(first["delta_glp_1step"], abs=1e-12)
    with pytest.raises(Exception, match="other documents"):
        E.delta_lm(glp, store, n_docs=3, seq_len=48, batch=2, conds=("glp_1step",), base=(d["base"], d["n"]))


@pytest.mark.parametrize("layer", [7, 29])
def test_shared_lower_blocks_give_the_losses_of_full_forwards(small_glp, layer):
    """splice_losses' fast path (blocks below L once per batch, acts/splice._prefix) equals a full hooked forward per
    condition, for a middle layer and the last block, with and without KL."""
    from lmlab.acts.positions import encode_docs
    from lmlab.acts.splice import splice_losses
    from lmlab.data.corpus import iter_documents
    from lmlab.models import load_causal_lm

    glp, _ = small_glp
    model, tok = load_causal_lm("smollm2")
    enc = encode_docs(tok, [d.text for _, d in zip(range(5), iter_documents(None, split="val"))], 40)
    conds = {"base": None, "mean": lambda h: glp.normalizer.mean.expand_as(h) if layer == 7 else h.roll(1, -1),
             "noise": lambda h: h + 0.1 * torch.randn(h.shape, generator=torch.Generator().manual_seed(0))}
    fast = splice_losses(model, tok, enc, layer, conds, batch=2, kl=True)
    slow = splice_losses(model, tok, enc, layer, conds, batch=2, kl=True, fast=False)
    for name in conds:
        for k in ("ce", "kl", "n"):
            assert np.allclose(fast[name][k], slow[name][k], rtol=1e-5, atol=1e-5), (name, k)
    assert fast["mean"]["ce"].sum() > fast["base"]["ce"].sum() + 1

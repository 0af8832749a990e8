"""GLP denoiser and flow matching: exact sizes, init loss, pure samplers, a 2-D toy it must learn."""

import pytest
import torch

from lmlab.errors import DataError
from lmlab.glp.flow import (
    add_noise,
    fm_loss,
    get_sigmas,
    sample_euler,
    sample_heun,
    sample_sigma,
    x0_estimate,
)
from lmlab.glp.net import GLP, Denoiser, DenoiserConfig, Normalizer, n_params

# the paper's Llama-3.2-1B family (d_in 2048) and Llama-3.1-8B d6: exact counts derived from layer shapes (glp.md §2.2)
PAPER = [(2048, 3, 453_117_952), (2048, 6, 855_881_728), (2048, 12, 1_661_409_280), (2048, 24, 3_272_464_384),
         (4096, 6, 3_423_039_488)]


@pytest.mark.parametrize("d_in,depth,count", PAPER)
def test_param_formula_reproduces_the_paper_sizes(d_in, depth, count):
    assert n_params(DenoiserConfig(d_in=d_in, n_layers=depth)) == count


def test_multi_layer_size_and_instantiated_counts():
    assert n_params(DenoiserConfig(d_in=2048, n_layers=12, n_llm_layers=16)) == 1_694_971_904  # glp-llama1b-d12-multi
    for cfg in (DenoiserConfig(d_in=24, n_layers=2), DenoiserConfig(d_in=16, n_layers=1, n_llm_layers=4)):
        assert sum(p.numel() for p in Denoiser(cfg).parameters()) == n_params(cfg)


def test_shapes_and_layer_conditioning():
    net = Denoiser(DenoiserConfig(d_in=12, n_layers=2, n_llm_layers=8))
    x = torch.randn(5, 12)
    out = net(x, torch.rand(5), layer=torch.tensor(3))
    assert out.shape == (5, 12)
    assert not torch.allclose(out, net(x, out.new_full((5,), 0.5), layer=torch.tensor(3)))
    with pytest.raises(ValueError, match="layer"):
        net(x, torch.rand(5))


def test_loss_at_init_is_about_two_on_unit_variance_data():
    torch.manual_seed(0)
    net = Denoiser(DenoiserConfig(d_in=64, n_layers=2))
    x0, eps = torch.randn(4096, 64), torch.randn(4096, 64)
    loss = fm_loss(net, x0, sample_sigma(4096), eps).item()
    assert 1.8 < loss < 2.4  # E|eps - x0|^2 = 2 per element, and the untrained output is small


def test_noise_and_clean_estimate_are_consistent():
    x0, eps, s = torch.randn(3, 4), torch.randn(3, 4), torch.tensor([0.0, 0.3, 1.0])
    xt = add_noise(x0, eps, s)
    assert torch.allclose(xt[0], x0[0]) and torch.allclose(xt[2], eps[2])
    assert torch.allclose(x0_estimate(xt, s, eps - x0), x0, atol=1e-6)  # the true velocity recovers x0
    g = get_sigmas(20)
    assert g[0] == 1.0 and g[-2] == pytest.approx(0.001) and g[-1] == 0 and len(g) == 21
    u = sample_sigma(10_000, generator=torch.Generator().manual_seed(0))
    assert u.min() >= 0.001 - 1e-7 and u.max() <= 1.0 and len(torch.unique(u)) > 900


@pytest.mark.parametrize("sampler", [sample_euler, sample_heun])
def test_samplers_are_pure_functions(sampler):
    torch.manual_seed(0)
    net = Denoiser(DenoiserConfig(d_in=8, n_layers=1))
    x, sig = torch.randn(6, 8), get_sigmas(5)
    x_copy, sig_copy = x.clone(), sig.clone()
    seen = []
    with torch.no_grad():
        a = sampler(net, x, sig, callback=lambda d: seen.append(d["i"]))
        b = sampler(net, x, sig)
    assert torch.equal(a, b) and torch.equal(x, x_copy) and torch.equal(sig, sig_copy)
    assert seen == [0, 1, 2, 3, 4]


def test_normalizer_round_trip_and_checks():
    mean, var = torch.randn(6), torch.rand(6) * 10
    n = Normalizer(mean, var)
    x = torch.randn(4, 6) * var.sqrt() + mean
    assert torch.allclose(n.denormalize(n.normalize(x)), x, atol=1e-5)
    Normalizer(mean, torch.zeros(6))  # a constant dimension is fine (epsilon), unlike the official normaliser
    with pytest.raises(DataError, match="NaN"):
        Normalizer(mean, torch.full((6,), float("nan")))
    with pytest.raises(DataError, match="d=6"):
        GLP(Denoiser(DenoiserConfig(d_in=8, n_layers=1)), n)


def _mixture(n, g=None):
    """2-D mixture of 4 well-separated Gaussians."""
    centers = torch.tensor([[2.0, 2.0], [-2.0, 2.0], [2.0, -2.0], [-2.0, -2.0]])
    k = torch.randint(0, 4, (n,), generator=g)
    return centers[k] + 0.3 * torch.randn(n, 2, generator=g)


def _fd(a: torch.Tensor, b: torch.Tensor) -> float:
    """Frechet distance between Gaussian fits; tr sqrt(Ca Cb) = sum of sqrt of the eigenvalues of Ca Cb
    (real and non-negative: Ca Cb is similar to the PSD matrix Ca^1/2 Cb Ca^1/2)."""
    import numpy as np

    ma, mb = a.mean(0).numpy(), b.mean(0).numpy()
    ca, cb = np.cov(a.numpy().T), np.cov(b.numpy().T)
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvals(ca @ cb).real, 0, None)).sum()
    return float(((ma - mb) ** 2).sum() + np.trace(ca + cb) - 2 * tr_covmean)


def test_tiny_glp_learns_a_2d_mixture():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    net = Denoiser(DenoiserConfig(d_in=2, d_model=64, d_mlp=128, n_layers=2))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    ref = _mixture(4000, g)
    with torch.no_grad():
        before = _fd(sample_euler(net, torch.randn(4000, 2, generator=g), get_sigmas(20)), ref)
    for _ in range(1500):
        x0 = _mixture(512, g)
        loss = fm_loss(net, x0, sample_sigma(512, generator=g), torch.randn(512, 2, generator=g))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        samples = sample_euler(net, torch.randn(4000, 2, generator=g), get_sigmas(20))
    after = _fd(samples, ref)
    assert after < 0.05 * before and after < 0.2, (before, after)
    # and the samples sit in the four modes, not between them
    near = (samples.abs() - 2).abs().max(dim=1).values < 1.0
    assert near.float().mean() > 0.9


def test_time_dedup_is_exact():
    """Computing the time path once per distinct sigma gives the per-row computation's outputs and grads."""
    torch.manual_seed(0)
    net = Denoiser(DenoiserConfig(d_in=6, d_model=16, d_mlp=24, n_layers=2))
    x, sigma = torch.randn(64, 6), sample_sigma(64, generator=torch.Generator().manual_seed(1))[:8].repeat(8)
    out = net(x, sigma)
    out.square().sum().backward()
    g = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    from lmlab.glp.net import sinusoid

    e = net.time_embed(sinusoid(1000.0 * sigma, 16))  # reference: every row its own time embedding
    h = net.in_proj(x)
    for block in net.layers:
        h = block(h, e)
    ref = net.out_proj(net.ln(h))
    ref.square().sum().backward()
    assert torch.allclose(out, ref, atol=1e-6)
    assert all(torch.allclose(a, p.grad, atol=1e-5) for a, p in zip(g, net.parameters()))


def test_stratified_sigma_keeps_the_uniform_marginal():
    """strata=8: each call uses one coset of the 1000-level grid (<= 125 distinct sigmas), yet a single draw is
    uniform over all 1000 levels (chi-square on 30k independent one-row calls, df = 999)."""
    g = torch.Generator().manual_seed(0)
    batches = [sample_sigma(1024, generator=g, strata=8) for _ in range(64)]
    assert all(len(torch.unique(d)) <= 125 for d in batches)
    assert len({round(float(d[0] * 1000)) % 8 for d in batches}) == 8  # every coset gets used
    k = torch.round((1 - torch.cat([sample_sigma(1, generator=g, strata=8) for _ in range(30_000)])) * 1000).long()
    counts = torch.bincount(k, minlength=1000).double()
    expected = len(k) / 1000
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 999 + 5 * (2 * 999) ** 0.5  # mean 999, sd ~45
    with pytest.raises(ValueError):
        sample_sigma(4, strata=7)

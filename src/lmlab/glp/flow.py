"""Flow matching on activations (rectified flow; Lipman et al. 2023, Liu et al. 2023) in GLP's convention:
t = sigma = 0 is data, 1 is noise, x_t = (1 - sigma) x0 + sigma eps, the network predicts the velocity
v = eps - x0, the loss is plain MSE (GLP §2.1).

Everything here is a pure function of its arguments: samplers take an explicit sigma grid (k-diffusion's
`sample_*(model, x, sigmas, callback=None)` shape). The official code keeps one stateful diffusers scheduler
shared by training, sampling and steering, so a call to one silently changes the others' noise levels
(glp.md §5.4); there is no such state here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from lmlab.errors import ConfigError


def check_sigma(sigma: float) -> None:
    """A noise level to start from (steering's sigma_s, probing's meta-neuron sigma) lies in (0, 1]."""
    if not 0.0 < sigma <= 1.0:
        raise ConfigError(f"start noise level sigma_s={sigma} is outside (0, 1]",
                          "use e.g. the paper's 0.4742 (0 = no noise, 1 = pure noise)")


def sample_sigma(n: int, kind: Literal["uniform", "logit_normal"] = "uniform", generator=None,
                 device="cpu", strata: int = 1) -> torch.Tensor:
    """Training noise levels (n,). uniform: the paper's discrete grid 1 - k/1000, k ~ U{0..999}
    (diffusers FlowMatchEulerDiscreteScheduler, shift 1); logit_normal: sigmoid(N(0, 1)) (SD3, Esser et al. 2024).

    strata > 1 (uniform only): the whole call draws k from one random coset {o, o + strata, ...} of the grid,
    o ~ U{0..strata-1}. Each k still has probability 1/1000 (the marginal is the paper's, exactly), but the n
    levels take at most 1000/strata distinct values, evenly spread over [0, 1] (a stratified, low-discrepancy
    draw in the spirit of Kingma et al. 2021's VDM sampler), so the denoiser's deduplicated time path costs
    1/strata as much."""
    if kind == "uniform":
        if 1000 % strata:
            raise ValueError(f"strata={strata} must divide the 1000-level grid")
        if strata == 1:
            k = torch.randint(0, 1000, (n,), generator=generator, device=device)
        else:
            o = torch.randint(0, strata, (1,), generator=generator, device=device)
            k = o + strata * torch.randint(0, 1000 // strata, (n,), generator=generator, device=device)
        return 1.0 - k.float() / 1000.0
    return torch.sigmoid(torch.randn(n, generator=generator, device=device))


def add_noise(x0: torch.Tensor, eps: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """x_sigma = (1 - sigma) x0 + sigma eps. x0, eps: (B, d); sigma: (B,) or scalar."""
    s = sigma.reshape(-1, *([1] * (x0.dim() - 1))) if sigma.dim() else sigma
    return (1 - s) * x0 + s * eps


def x0_estimate(x_t: torch.Tensor, sigma: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Clean estimate x0_hat = x_t - sigma v (from x_t = x0 + sigma (eps - x0))."""
    s = sigma.reshape(-1, *([1] * (x_t.dim() - 1))) if sigma.dim() else sigma
    return x_t - s * v


def fm_loss(model: Callable, x0: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """Flow-matching loss: mean over all elements of (v_hat(x_sigma, sigma) - (eps - x0))^2."""
    v = model(add_noise(x0, eps, sigma), sigma)
    return (v.float() - (eps - x0).float()).pow(2).mean()


def get_sigmas(n: int, sigma_max: float = 1.0, sigma_min: float = 0.001) -> torch.Tensor:
    """The paper's n-step grid: linspace(sigma_max, sigma_min, n) then a terminal 0 ((n + 1,) values;
    = diffusers set_timesteps(n) on 1000 training steps)."""
    return torch.cat([torch.linspace(sigma_max, sigma_min, n), torch.zeros(1)])


def sample_euler(model: Callable, x: torch.Tensor, sigmas: torch.Tensor, callback: Callable | None = None) -> torch.Tensor:
    """Euler steps of the probability-flow ODE dx/dsigma = v(x, sigma), from sigmas[0] down to sigmas[-1]."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        v = model(x, s.to(x.device).expand(x.shape[0]))
        if callback is not None:
            callback({"x": x, "i": i, "sigma": s, "denoised": x0_estimate(x, s, v)})
        x = x + (s_next - s) * v
    return x


def sample_heun(model: Callable, x: torch.Tensor, sigmas: torch.Tensor, callback: Callable | None = None) -> torch.Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Algorithm 1 without churn); last step to 0 is Euler."""
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        v = model(x, s.to(x.device).expand(x.shape[0]))
        if callback is not None:
            callback({"x": x, "i": i, "sigma": s, "denoised": x0_estimate(x, s, v)})
        x_next = x + (s_next - s) * v
        if s_next > 0:
            v2 = model(x_next, s_next.to(x.device).expand(x.shape[0]))
            x_next = x + (s_next - s) * 0.5 * (v + v2)
        x = x_next
    return x

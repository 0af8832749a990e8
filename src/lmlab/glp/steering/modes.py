"""The steering intervention and its on-manifold post-processing modes (Luo et al. 2026 §4a; glp.md §4a).

Intervention (the official `addition_intervention`): at layer L, on the LAST position of every forward call
during generation (the last prompt token at prefill, then each new token with the KV cache),
    a_edit = a + alpha w,   w unit-norm, alpha = r * |a_bar| (the store's mean activation norm).
Post-processing (pure functions of their arguments; the hook calls them):
    sdedit  normalise, noise to sigma_s with fresh eps, Euler back to 0 on an explicit grid (paper: sigma_s =
            0.4742, 10 NFEs = the tail of the 20-step grid), de-normalise                       (the paper)
    x0      the same noise, one denoiser call, the clean estimate x0_hat = x_t - sigma_s v      (1 NFE)
    orth    sdedit, but the correction is projected orthogonal to w: the edit along w survives whole
    delta   "differential" SDEdit: denoise the edited and the unedited activation with the SAME noise and add
            only the difference of the two reconstructions, projected orthogonal to w:
                h~ = a_edit + P_perp(D(a_edit; eps) - D(a; eps))
            The GLP's own reconstruction error on the unedited activation cancels (at r = 0, h~ = a exactly),
            and what remains is how the prior says the rest of the vector should move given the edit.
    guided  edit-preserving SDEdit by replacement (the "replacement" conditional sampler: Song et al. 2021,
            score-SDE App. I.2 imputation; RePaint without resampling, Lugmayr et al. 2022): Euler from sigma_s
            as sdedit, but after EVERY step the coordinate of the state along g = std * w (the z-space direction
            whose coordinate fixes <a, w> in raw space) is reset to its value on the forward noising path of
            the edited activation, (1 - sigma) <z_edit, g> + sigma <eps, g>. The rest of the vector is denoised
            by a prior that sees the edit at every step; at sigma = 0 the coordinate is <z_edit, g>, so
            <a~, w> = <a_edit, w>: retention 1 by construction. Unlike orth (which projects only the FINAL
            correction of an sdedit that never saw the edit held fixed), the orthogonal part here is the prior's
            answer conditioned on the edit.
Positions (`steer_positions`): "last" (the paper) or "all" (every real prompt position at prefill, the attention
sink excluded, then every generated token).
Retention = <h~ - a, w> / alpha: how much of the edit survives the prior (1 for plain addition, orth, delta).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from lmlab.errors import ConfigError
from lmlab.glp.flow import add_noise, check_sigma, sample_euler

PAPER_SIGMA_S = float(1 - 10 * 0.999 / 19)  # index 10 of linspace(1, 0.001, 20): 0.4742 (glp.md §4a)


def steer_sigmas(sigma_s: float, steps: int) -> torch.Tensor:
    """A fresh (steps + 1,) grid: linspace(sigma_s, 0.001, steps) then 0; steps = 1: [sigma_s, 0].
    (sigma_s = 0.4742, steps = 10 is exactly the tail of the paper's 20-step grid.)"""
    check_sigma(sigma_s)
    if steps < 1:
        raise ConfigError(f"steps={steps}", "use steps >= 1")
    if steps == 1:
        return torch.tensor([sigma_s, 0.0])
    return torch.cat([torch.linspace(sigma_s, 0.001, steps), torch.zeros(1)])


def paper_steps(sigma_s: float) -> int:
    """NFEs from sigma_s at the paper's grid density (linspace(1, 0.001, 20): spacing 0.999 / 19): 10 at the
    paper's 0.4742, 6 at 0.25 — a smaller sigma_s costs proportionally fewer denoiser calls."""
    check_sigma(sigma_s)
    return max(1, round((sigma_s - 0.001) / (0.999 / 19)) + 1)


def denoise(glp, h: torch.Tensor, eps: torch.Tensor, sigma_s: float, steps: int) -> torch.Tensor:
    """Raw (B, d) -> z-score, noise to sigma_s with eps (B, d), Euler to 0 (steps NFEs), de-normalise."""
    z_t = add_noise(glp.encode(h.float()), eps, torch.tensor(sigma_s))
    return glp.decode(sample_euler(glp, z_t, steer_sigmas(sigma_s, steps)))


def project_out(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Component of x (B, d) orthogonal to the unit vector w (d,)."""
    return x - (x @ w)[:, None] * w[None]


def delta_edit(glp, h: torch.Tensor, h_edit: torch.Tensor, w: torch.Tensor, sigma_s: float, steps: int,
               eps: torch.Tensor) -> torch.Tensor:
    """h_edit + P_perp(D(h_edit; eps) - D(h; eps)): both rows denoised with the same noise."""
    both = denoise(glp, torch.cat([h_edit, h]), torch.cat([eps, eps]), sigma_s, steps)  # common noise
    return h_edit + project_out(both[: len(h)] - both[len(h):], w)


def guided_edit(glp, h: torch.Tensor, h_edit: torch.Tensor, w: torch.Tensor, sigma_s: float, steps: int,
                eps: torch.Tensor) -> torch.Tensor:
    """Edit-preserving SDEdit (module docstring, `guided`): Euler from sigma_s to 0 on `steer_sigmas`, the
    coordinate along g = std * w / |std * w| replaced after each step by the noised edited value. h, h_edit,
    eps (B, d) raw / raw / z-space; w (d,) unit raw direction."""
    z_e = glp.encode(h_edit.float())  # (B, d)
    g = glp.normalizer.std.float() * w  # (d,): <h, w> = <mean, w> + <z, std * w>
    g = g / g.norm()
    ce, cn = z_e @ g, eps @ g  # (B,) clean and noise coordinates along g
    sig = steer_sigmas(sigma_s, steps)
    x = add_noise(z_e, eps, torch.tensor(sigma_s))
    for i in range(len(sig) - 1):
        s, s_next = sig[i], sig[i + 1]
        x = x + (s_next - s) * glp(x, s.expand(x.shape[0]))
        x = x + ((1 - s_next) * ce + s_next * cn - x @ g)[:, None] * g[None]  # replace the known coordinate
    return glp.decode(x)


# mode -> fn(glp, h, h_edit, w, sigma_s, steps, eps); its keys are the modes, in the order help texts list them
POSTPROCESS: dict[str, Callable[..., torch.Tensor]] = {
    "plain": lambda glp, h, h_edit, w, sigma_s, steps, eps: h_edit,
    "sdedit": lambda glp, h, h_edit, w, sigma_s, steps, eps: denoise(glp, h_edit, eps, sigma_s, steps),
    "x0": lambda glp, h, h_edit, w, sigma_s, steps, eps: denoise(glp, h_edit, eps, sigma_s, 1),
    "orth": lambda glp, h, h_edit, w, sigma_s, steps, eps: h_edit + project_out(
        denoise(glp, h_edit, eps, sigma_s, steps) - h_edit, w),
    "delta": delta_edit,
    "guided": guided_edit,
}
POSITIONS = ("last", "all")
MODES = tuple(POSTPROCESS)


def check_mode(mode: str, has_glp: bool) -> None:
    """The one check of a steering mode: a known name, and a GLP for every mode but plain."""
    if mode not in MODES:
        raise ConfigError(f"unknown steering mode {mode!r}", f"use one of {', '.join(MODES)}")
    if mode != "plain" and not has_glp:
        raise ConfigError(f"mode {mode!r} needs a GLP", "pass --glp SPEC (or use mode plain)")


def postprocess(glp, h: torch.Tensor, h_edit: torch.Tensor, w: torch.Tensor, mode: str, sigma_s: float,
                steps: int, eps: torch.Tensor) -> torch.Tensor:
    """The steered activation for one batch of rows: h (B, d) unedited, h_edit = h + alpha w (B, d).
    `mode` is one that check_mode accepted."""
    return POSTPROCESS[mode](glp, h, h_edit, w, sigma_s, steps, eps)


def retention(h: torch.Tensor, h_new: torch.Tensor, w: torch.Tensor, alpha: float) -> torch.Tensor:
    """<h~ - h, w> / alpha per row (B,): the fraction of the edit that survives post-processing."""
    return ((h_new.float() - h.float()) @ w) / alpha


@dataclass
class Steer:
    """One steering condition; calling it edits (B, d) rows and logs retention."""

    w: torch.Tensor
    alpha: float
    mode: str = "plain"
    glp: object = None
    sigma_s: float = PAPER_SIGMA_S
    steps: int = 10
    seed: int = 0
    log: list = field(default_factory=list)
    calls: int = 0

    def __post_init__(self):
        check_mode(self.mode, self.glp is not None)
        check_sigma(self.sigma_s)
        self.gen = torch.Generator().manual_seed(self.seed)  # fresh eps per call, reproducible per condition

    @torch.no_grad()
    def __call__(self, h: torch.Tensor) -> torch.Tensor:
        w = self.w.to(h.device, torch.float32)
        h32 = h.float()
        eps = torch.randn(h32.shape, generator=self.gen)
        out = postprocess(self.glp, h32, h32 + self.alpha * w, w, self.mode, self.sigma_s, self.steps, eps)
        self.calls += 1
        if self.alpha:
            self.log.append(retention(h32, out, w, self.alpha))
        return out.to(h.dtype)


def check_positions(positions: str) -> None:
    if positions not in POSITIONS:
        raise ConfigError(f"unknown steering positions {positions!r}", f"use one of {', '.join(POSITIONS)}")


@contextlib.contextmanager
def steer_positions(model, layer: int, fn: Callable[[torch.Tensor], torch.Tensor], positions: str = "last",
                    keep: torch.Tensor | None = None) -> Iterator[None]:
    """Replace the layer-L residual by fn(rows (N, d)) at the last position of every forward call
    (positions="last", the paper) or at every position (positions="all"). With "all", `keep` (B, T) bool (the
    prefill batch's real, non-sink positions: acts.positions.keep_positions) limits a forward of that width to
    those positions; a cached step (T = 1) edits its one position."""
    from lmlab.acts.hooks import write_residual

    check_positions(positions)
    if positions == "last":
        with steer_last_position(model, layer, fn):
            yield
        return

    def edit(h: torch.Tensor) -> torch.Tensor:  # h (B, T, d)
        m = (keep.to(h.device) if keep is not None and h.shape[1] == keep.shape[1] and h.shape[1] > 1
             else torch.ones(h.shape[:2], dtype=torch.bool, device=h.device))  # (B, T)
        out = h.clone()
        out[m] = fn(h[m])  # (N, d) rows
        return out

    with write_residual(model, layer, edit):
        yield


@contextlib.contextmanager
def steer_last_position(model, layer: int, fn: Callable[[torch.Tensor], torch.Tensor]) -> Iterator[None]:
    """Replace the layer-L residual at the last position of every forward call by fn(rows (B, d))."""
    from lmlab.acts.hooks import write_residual

    def edit(h: torch.Tensor) -> torch.Tensor:  # h (B, T, d)
        out = h.clone()
        out[:, -1] = fn(h[:, -1])
        return out

    with write_residual(model, layer, edit):
        yield

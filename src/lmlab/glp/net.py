"""The GLP denoiser (Luo et al. 2026, "Learning a Generative Meta-Model of LLM Activations", §2) and the
normalising wrapper around it, kept separate as in EDM (Karras et al. 2022): the raw network works in
z-scored space; `GLP` takes and returns raw activations.

Denoiser (single token, unconditional; parameter names as in the official checkpoints so they load as-is):
    x = in_proj(a)                                        # d_in -> d_model
    e = time_embed(sinusoid(1000 * sigma))                # Linear-SiLU-Linear; [cos, sin] halves, period 1e4
    (multi-layer) e += layer_embed(sinusoid(layer / (n_llm_layers - 1)))
    n_layers x:  x = x + down(SiLU(gate(LN x) * time_proj(e)) * up(LN x))      # multiplicative time gate
    out = out_proj(ln(x))                                 # d_model -> d_in
Defaults d_model = 2 d_in, d_mlp = 4 d_in (the paper: width relative to the input was critical).

Sequence-aware prior (context K > 0; the paper's conclusion names multi-token, "sequence-aware" priors as future
work, reference glp.md §8): after in_proj the hidden state also reads the previous K clean activations of the same
document through one single-query cross-attention (`ContextAttention`):
    x = x + attn(q = LN x, keys/values = kv_proj(c_j) + pos_j for j = 1..K, plus a learned null key/value)
A position whose context is missing (document start, a position not stored) attends to the null slot only.
With K = 0 the network, its parameter names and its outputs are exactly the single-token prior's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmlab.errors import ConfigError, DataError


@dataclass
class DenoiserConfig:
    d_in: int | None = None
    """Activation width (the LLM's d_model; None: the store's, filled in when training resolves the config)."""
    d_model: int | None = None
    """Residual width of the denoiser (None: 2 d_in, the paper's family)."""
    d_mlp: int | None = None
    """SwiGLU hidden width (None: 4 d_in, the paper's family)."""
    n_layers: int = 3
    """Residual blocks: the depth knob of the paper's scaling family."""
    n_llm_layers: int | None = None
    """Multi-layer prior: number of LLM layers to condition on (None: single-layer, unconditional)."""
    context: int = 0
    """Sequence-aware prior: the previous `context` clean activations of the same document the denoiser attends
    to (glp/context.py builds them from the store's provenance); 0 = the paper's single-token prior."""

    def __post_init__(self):
        if not isinstance(self.context, int) or self.context < 0:
            raise ConfigError(f"net.context={self.context} must be an integer >= 0",
                              "use --context K with K >= 0 (0 = the single-token prior)")
        if self.d_in is None:  # relative to a store not yet known: train.resolve_shape fills the widths in
            return
        self.d_model = self.d_model or 2 * self.d_in
        self.d_mlp = self.d_mlp or 4 * self.d_in
        if self.d_model % 2 or min(self.d_in, self.n_layers) < 1:
            raise ConfigError(f"bad denoiser shape d_in={self.d_in} d_model={self.d_model} n_layers={self.n_layers}",
                              "d_model must be even; d_in and n_layers >= 1")


def n_params(cfg: DenoiserConfig) -> int:
    """Closed-form parameter count (every Linear and LayerNorm has a bias)."""
    d, m, h = cfg.d_in, cfg.d_model, cfg.d_mlp
    embed = 2 * (m * m + m) * (2 if cfg.n_llm_layers else 1)
    block = 2 * m + 3 * (m * h + h) + (h * m + m)
    k = cfg.context  # ContextAttention: ln, q / kv / out projections, per-distance key-value offsets, null slot
    ctx = (2 * m + (m * m + m) + (d * 2 * m + 2 * m) + (m * m + m) + k * 2 * m + 2 * m) if k else 0
    return (d * m + m) + embed + cfg.n_layers * block + 2 * m + (m * d + d) + ctx


def forward_flops(cfg: DenoiserConfig) -> int:
    """Matmul FLOPs of one forward per activation: 2 N, plus, for a context prior, the key-value projection
    (kv_proj, d_in -> 2 d_model) applied to each of the K slots rather than once (train.py's C = 3 x this x D)."""
    m, k = cfg.d_model, cfg.context
    return 2 * n_params(cfg) + 2 * (k - 1) * (cfg.d_in * 2 * m) * (k > 0)


def sinusoid(t: torch.Tensor, dim: int, max_period: float = 1e4) -> torch.Tensor:
    """DiT-style embedding of scalars t (B,) -> (B, dim): [cos(t f), sin(t f)], f geometric down to 1/max_period."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def _mlp(m: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(m, m), nn.SiLU(), nn.Linear(m, m))


class Block(nn.Module):
    def __init__(self, m: int, h: int):
        super().__init__()
        self.ln = nn.LayerNorm(m)
        self.gate_proj, self.up_proj, self.time_proj = nn.Linear(m, h), nn.Linear(m, h), nn.Linear(m, h)
        self.down_proj = nn.Linear(h, m)

    def forward(self, x: torch.Tensor, e: torch.Tensor, inv: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, m); e (U, m) time embeddings of the U distinct noise levels, inv (B,) maps rows to them."""
        r = self.ln(x)
        t = self.time_proj(e)
        t = t if inv is None else t.index_select(0, inv)  # backward: index_add (deterministic on CPU)
        return x + self.down_proj(F.silu(self.gate_proj(r) * t) * self.up_proj(r))


class ContextAttention(nn.Module):
    """Single-query multi-head cross-attention from a position's hidden state to the previous K clean
    activations of its document (the sequence-aware prior; see the module docstring). Keys/values:
    kv_proj(c_j) + pos_kv[j - 1] for distance j = 1..K (one projection straight from d_in — a separate input
    projection before it would compose to the same linear map at 2.5x the per-slot cost), plus a learned null
    slot every query may attend to, so a position without context (ctx_mask all False) still gets a well-defined
    output. Masked slots get exactly zero weight (scaled_dot_product_attention with a boolean mask)."""

    def __init__(self, d_in: int, m: int, k: int):
        super().__init__()
        self.heads = max(1, m // 64)
        while m % self.heads:
            self.heads -= 1
        self.ln = nn.LayerNorm(m)
        self.q_proj, self.kv_proj, self.out_proj = nn.Linear(m, m), nn.Linear(d_in, 2 * m), nn.Linear(m, m)
        self.pos_kv = nn.Parameter(0.02 * torch.randn(k, 2 * m))  # key and value offsets of distance 1..K
        self.null_kv = nn.Parameter(0.02 * torch.randn(2, m))  # the null key and value

    def forward(self, h: torch.Tensor, ctx: torch.Tensor, ctx_mask: torch.Tensor) -> torch.Tensor:
        """h (B, m); ctx (B, K, d_in) z-scored clean activations, ctx_mask (B, K) bool -> (B, m)."""
        B, m, H = h.shape[0], h.shape[1], self.heads
        k, v = (self.kv_proj(ctx.to(h.dtype)) + self.pos_kv.to(h.dtype)).chunk(2, dim=-1)  # (B, K, m) each
        nk, nv = self.null_kv.to(h.dtype)[:, None, None, :].expand(2, B, 1, m)
        k, v = torch.cat([nk, k], 1), torch.cat([nv, v], 1)  # (B, K + 1, m)
        mask = torch.cat([torch.ones(B, 1, dtype=torch.bool, device=h.device), ctx_mask.bool()], 1)  # (B, K + 1)
        q = self.q_proj(self.ln(h)).view(B, H, 1, m // H)  # (B, H, 1, m/H)
        k, v = (t.view(B, -1, H, m // H).transpose(1, 2) for t in (k, v))  # (B, H, K + 1, m/H)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask[:, None, None, :])  # (B, H, 1, m/H)
        return self.out_proj(out.reshape(B, m))


class Denoiser(nn.Module):
    """Velocity prediction v(x_t, sigma) for single activations. x: (B, d_in), sigma: (B,) in [0, 1]; a context
    denoiser (cfg.context = K > 0) also takes ctx (B, K, d_in) z-scored previous activations of the same
    document (ctx[:, j - 1] at distance j) and ctx_mask (B, K) bool (True = a real previous position; ctx None:
    no context anywhere)."""

    def __init__(self, cfg: DenoiserConfig):
        super().__init__()
        self.cfg = cfg
        m = cfg.d_model
        self.in_proj = nn.Linear(cfg.d_in, m)
        self.time_embed = _mlp(m)
        self.layer_embed = _mlp(m) if cfg.n_llm_layers else None
        self.layers = nn.ModuleList(Block(m, cfg.d_mlp) for _ in range(cfg.n_layers))
        self.ln = nn.LayerNorm(m)
        self.out_proj = nn.Linear(m, cfg.d_in)
        # created last, and only for K > 0: a single-token denoiser's parameter names and init are unchanged
        self.ctx_attn = ContextAttention(cfg.d_in, m, cfg.context) if cfg.context else None
        self.dedup_time = True
        """Compute the time path once per distinct sigma (False: per row, as the official code does)."""

    def forward(self, x: torch.Tensor, sigma: torch.Tensor, layer: torch.Tensor | None = None,
                ctx: torch.Tensor | None = None, ctx_mask: torch.Tensor | None = None) -> torch.Tensor:
        m = self.cfg.d_model
        sigma = sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma
        inv = None
        if self.layer_embed is None and self.dedup_time:
            # the time MLP and every block's time_proj depend on sigma alone: compute them once per distinct
            # sigma and gather (training draws from 1000 levels, a sampler step uses one) — exact, and it
            # removes most of a quarter of each block's matmuls at batch sizes >> 1000
            sigma, inv = torch.unique(sigma, return_inverse=True)
        e = self.time_embed(sinusoid(1000.0 * sigma, m).to(x.dtype))  # the network sees the timestep 1000 sigma
        if self.layer_embed is not None:
            if layer is None:
                raise ValueError("a multi-layer denoiser needs the layer index")
            pos = layer.float() / max(1, self.cfg.n_llm_layers - 1)
            e = e + self.layer_embed(sinusoid(pos.expand(x.shape[0]), m).to(x.dtype))
        h = self.in_proj(x)
        if self.ctx_attn is not None:
            h = h + self.ctx_attn(h, *self._context(x, ctx, ctx_mask))
        elif ctx is not None:
            raise ValueError("a single-token denoiser (context=0) takes no context")
        for block in self.layers:
            h = block(h, e, inv)
        return self.out_proj(self.ln(h))

    def _context(self, x: torch.Tensor, ctx, ctx_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """(ctx (B, K, d_in), mask (B, K)): ctx None means no context for any row (all slots masked)."""
        B, K = x.shape[0], self.cfg.context
        if ctx is None:
            return x.new_zeros(B, K, self.cfg.d_in), torch.zeros(B, K, dtype=torch.bool, device=x.device)
        if ctx.shape != (B, K, self.cfg.d_in):
            raise ValueError(f"context of shape {tuple(ctx.shape)}, expected {(B, K, self.cfg.d_in)}")
        return ctx, (torch.ones(B, K, dtype=torch.bool, device=x.device) if ctx_mask is None else ctx_mask)

    def summary(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        ctx = f", context {self.cfg.context}" if self.cfg.context else ""
        return f"GLP denoiser: {n / 1e6:.2f}M params ({self.cfg.n_layers} blocks, d_model {self.cfg.d_model}{ctx})"


class Normalizer(nn.Module):
    """Per-dimension z-score from the activation store's statistics, with an epsilon (the official
    Normalizer has none: a constant dimension divides by zero)."""

    def __init__(self, mean: torch.Tensor, var: torch.Tensor, eps: float = 1e-6):
        super().__init__()
        if not (torch.isfinite(mean).all() and torch.isfinite(var).all()) or (var < 0).any():
            raise DataError("activation statistics contain NaN/inf or negative variance", "re-harvest the store")
        self.register_buffer("mean", mean.float().clone())
        self.register_buffer("std", (var.float() + eps).sqrt())

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std.to(z.dtype) + self.mean.to(z.dtype)


class GLP(nn.Module):
    """Denoiser + normaliser. `velocity` works in z-space; `encode`/`decode` convert raw activations."""

    def __init__(self, net: Denoiser, normalizer: Normalizer):
        super().__init__()
        if normalizer.mean.numel() != net.cfg.d_in:
            raise DataError(f"store statistics have d={normalizer.mean.numel()}, the denoiser expects "
                            f"d_in={net.cfg.d_in}", "train the GLP on a store of the same model and layer")
        self.net, self.normalizer = net, normalizer
        self.layer: int | None = None
        """Multi-layer prior: the LLM layer it is used at (the default layer input of `forward`)."""

    def forward(self, z: torch.Tensor, sigma: torch.Tensor, layer: torch.Tensor | None = None,
                ctx: torch.Tensor | None = None, ctx_mask: torch.Tensor | None = None) -> torch.Tensor:
        """z (B, d) z-scored; a context prior's ctx (B, K, d) is z-scored too (`encode` the raw context)."""
        if layer is None and self.layer is not None and self.net.layer_embed is not None:
            layer = torch.tensor(self.layer, device=z.device)
        if ctx is None:
            return self.net(z, sigma, layer)
        return self.net(z, sigma, layer, ctx, ctx_mask)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.normalizer.normalize(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.normalizer.denormalize(z)

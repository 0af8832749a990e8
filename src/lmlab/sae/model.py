"""Sparse autoencoders on residual-stream activations: TopK (Gao et al. 2024, "Scaling and evaluating sparse
autoencoders") and BatchTopK (Bussmann et al. 2024), one readable file.

    pre  = (x_n - b_dec) W_enc^T + b_enc          x_n = s * x, s = sqrt(d) / E|x| (a fixed input scale)
    f    = TopK_k(pre), ReLU'd                    (B, n_latents) with k non-zeros per row
    x_n^ = sum_j f_j W_dec[j] + b_dec             decoded from the k active rows only (embedding_bag), never a
                                                  dense (B, n) x (n, d) matmul
Training details (Gao §2.3, §A; token_filtering_sae.md §4.2, avoiding the anchors' known bugs):
  - unit-norm decoder rows, the gradient component parallel to each row projected out before every step
    (`project_decoder_grad`) and the rows renormalised after it (`normalise_decoder`);
  - b_dec initialised at the geometric median of a sample (Weiszfeld), W_enc = W_dec^T at init;
  - AuxK (Gao §A.2): the top k_aux = d_in / 2 pre-activations among DEAD latents reconstruct the main
    reconstruction's residual e = x_n - x_n^ (detached: SAELens #432, sparsify #57) without b_dec (sparsify
    #132: b_dec is already in the residual); loss coefficient 1/32 (sae/train.py normalises both losses);
  - BatchTopK keeps the top k * B pre-activations of the whole batch and learns a threshold (EMA of the
    smallest kept activation) that replaces TopK at inference: f = pre * 1[pre > theta].
Parameters stay fp32 (SAELens #728: bf16 Adam states lose the update); the encoder matmul may run in bf16.
`encode` / `decode` take and return RAW activations (the input scale is folded in), like `load_sae` promises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from lmlab.config import check_literal
from lmlab.errors import ConfigError


@dataclass
class SAEConfig:
    d_in: int = 576
    """Activation width (taken from the store)."""
    n_latents: int = 4608
    """Dictionary size (latents)."""
    k: int = 32
    """Active latents per token (TopK), or the mean per token over a batch (BatchTopK)."""
    variant: Literal["topk", "batchtopk", "jumprelu"] = "topk"
    """TopK per token, or BatchTopK (top k * batch over the batch; a learned threshold at inference), or
    JumpReLU (inference only: SAELens jumprelu folders, per-latent thresholds)."""
    k_aux: int | None = None
    """Dead latents used by the AuxK loss (None: d_in // 2, Gao et al.)."""
    aux_coef: float = 1 / 32
    """AuxK loss coefficient (Gao et al.: 1/32)."""
    threshold_decay: float = 0.999
    """BatchTopK: EMA decay of the inference threshold."""

    def __post_init__(self):
        check_literal(self)
        if min(self.d_in, self.n_latents, self.k) < 1:
            raise ConfigError("d_in, n_latents and k must be >= 1", "fix the SAE shape")
        if self.k >= self.n_latents:
            raise ConfigError(f"k={self.k} must be smaller than n_latents={self.n_latents}",
                              "choose k << n_latents (e.g. 32 of 4608)")
        if self.k_aux is None:
            self.k_aux = max(1, self.d_in // 2)


class SparseAutoencoder(nn.Module):
    """A TopK / BatchTopK SAE. W_enc (n, d), b_enc (n,), W_dec (n, d) unit rows, b_dec (d,), all in the
    normalised input space x_n = scale * x."""

    def __init__(self, cfg: SAEConfig, scale: float = 1.0):
        super().__init__()
        self.cfg = cfg
        n, d = cfg.n_latents, cfg.d_in
        w = torch.randn(n, d)
        w = w / w.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w)
        self.W_enc = nn.Parameter(w.clone())  # W_enc = W_dec^T (Gao §A.1)
        self.b_enc = nn.Parameter(torch.zeros(n))
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.register_buffer("threshold", torch.zeros(n))  # (n,) BatchTopK / JumpReLU inference thresholds

    # ---- core maps in the normalised space ------------------------------------------------------------
    def pre_acts(self, xn: torch.Tensor) -> torch.Tensor:
        """(B, d) normalised input -> (B, n) pre-activations (the one dense matmul)."""
        return F.linear(xn - self.b_dec, self.W_enc, self.b_enc)

    def select(self, pre: torch.Tensor, train: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(values (B, k), indices (B, k)) of the active latents, values ReLU'd. BatchTopK: at training, the
        top k*B of the batch (returned as per-row top-k_max with zeros where not kept); at inference, the
        threshold rule."""
        k = self.cfg.k
        if self.cfg.variant == "topk":
            v, i = pre.topk(k, dim=1, sorted=False)
            return v.relu(), i
        if train:
            flat = pre.relu().flatten()
            kept = flat.topk(k * pre.shape[0], sorted=False)
            mask = torch.zeros_like(flat, dtype=torch.bool).index_fill_(0, kept.indices, True).view_as(pre)
            if kept.values.numel():
                low = kept.values[kept.values > 0].min() if (kept.values > 0).any() else pre.new_zeros(())
                self.threshold.lerp_(low.detach().float(), 1 - self.cfg.threshold_decay)
            dense = pre.relu() * mask
        else:  # f = pre * 1[pre > theta] (JumpReLU form; theta >= 0)
            dense = pre.relu() * (pre > self.threshold)
        kmax = max(1, int((dense > 0).sum(1).max()))
        v, i = dense.topk(min(kmax, self.cfg.n_latents), dim=1, sorted=False)
        return v, i

    def decode_sparse(self, v: torch.Tensor, i: torch.Tensor, bias: bool = True) -> torch.Tensor:
        """sum_j v_j W_dec[i_j] (+ b_dec): (B, k) -> (B, d), touching only the k active rows."""
        out = F.embedding_bag(i, self.W_dec, per_sample_weights=v.to(self.W_dec.dtype), mode="sum")
        return out + self.b_dec if bias else out

    def forward(self, xn: torch.Tensor) -> dict[str, torch.Tensor]:
        """Training pass on normalised rows: reconstruction, active (values, indices), pre-activations."""
        pre = self.pre_acts(xn)
        v, i = self.select(pre, train=self.training)
        return {"recon": self.decode_sparse(v.float(), i), "values": v, "indices": i, "pre": pre}

    # ---- raw-space API (load_sae's contract) --------------------------------------------------------------
    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Raw activations (B, d) -> dense latent activations (B, n)."""
        v, i = self.select(self.pre_acts(x.float() * self.scale))
        return torch.zeros(x.shape[0], self.cfg.n_latents, device=x.device).scatter_(1, i, v.float())

    @torch.no_grad()
    def decode(self, f: torch.Tensor) -> torch.Tensor:
        """Dense latent activations (B, n) -> raw reconstructions (B, d)."""
        return (f.float() @ self.W_dec + self.b_dec) / self.scale

    # ---- constraint maintenance ---------------------------------------------------------------------------
    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove from each decoder row's gradient its component along the (unit) row (Gao §A.1)."""
        if self.W_dec.grad is not None:
            g, w = self.W_dec.grad, self.W_dec
            g.sub_((g * w).sum(1, keepdim=True) * w)

    @torch.no_grad()
    def normalise_decoder(self) -> None:
        self.W_dec.div_(self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def init_from_sample(self, x: torch.Tensor) -> None:
        """Input scale s = sqrt(d) / mean |x| and b_dec = geometric median of s * x (x: a raw sample (N, d))."""
        self.scale.fill_(math.sqrt(self.cfg.d_in) / float(x.float().norm(dim=1).mean()))
        self.b_dec.copy_(geometric_median(x.float() * self.scale))

    def summary(self) -> str:
        n = sum(p.numel() for p in self.parameters())
        c = self.cfg
        # FLOPs per token of a forward pass: the dense encoder 2 n d, the sparse decoder 2 k d
        return (f"SAE ({c.variant}): {n / 1e6:.2f}M params ({c.n_latents} latents x d {c.d_in}, k {c.k}); "
                f"{(2 * c.n_latents * c.d_in + 2 * c.k * c.d_in) / 1e6:.2f} MFLOP/token forward")


def geometric_median(x: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """argmin_m sum_i |x_i - m| by Weiszfeld's algorithm (x: (N, d)); the mean as the starting point."""
    m = x.mean(0)
    for _ in range(iters):
        w = 1.0 / (x - m).norm(dim=1).clamp_min(1e-8)  # (N,)
        new = (w[:, None] * x).sum(0) / w.sum()
        if (new - m).norm() <= tol * max(1.0, float(m.norm())):
            return new
        m = new
    return m


def fvu(x: torch.Tensor, recon: torch.Tensor) -> torch.Tensor:
    """Fraction of variance unexplained: sum |x - x^|^2 / sum |x - mean(x)|^2 over the batch."""
    return (x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum().clamp_min(1e-12)


def auxk_recon(sae: SparseAutoencoder, pre: torch.Tensor, dead: torch.Tensor) -> torch.Tensor:
    """Gao §A.2: the reconstruction e^ (B, d) of the main residual by the top-k_aux pre-activations (B, n) among
    the dead latents (n,) bool, decoded WITHOUT b_dec (it is already in the residual: sparsify #132)."""
    pre = pre.masked_fill(~dead, float("-inf"))
    v, i = pre.topk(min(sae.cfg.k_aux, int(dead.sum())), dim=1, sorted=False)
    return sae.decode_sparse(v.relu().float(), i, bias=False)

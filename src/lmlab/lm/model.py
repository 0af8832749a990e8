"""A Llama-architecture decoder in one readable file (nanoGPT-style).

Pre-norm blocks with RMSNorm, rotary position embeddings (RoPE, Su et al. 2021, in the "rotate-half"
layout HF Llama uses), grouped-query attention through `F.scaled_dot_product_attention`, a SwiGLU MLP
(Shazeer 2020), no biases, optionally tied input/output embeddings. Parameter names follow HF
`LlamaForCausalLM` (minus its `model.` prefix), so export/import (lm/hf.py) is a rename.

Sizes reported (and written to runs.csv for the scaling stage):
  n_total      every parameter once (a tied embedding counted once)
  n_embedding  the token embedding table (vocab x d)
  n_nonembed   n_total minus every vocab-sized matrix (embedding, and lm_head when untied): Kaplan et al.
               2020's N, which excludes "all vocabulary and positional embeddings"
  n_matmul     weights of every matmul a token passes through: block linears + lm_head (tied or not):
               nanochat's "transformer matrices + lm_head" convention, the one FLOPs follow
FLOPs per token (a multiply-add = 2 FLOPs; norms, RoPE, softmax and SiLU are O(d) and not counted):
  forward  = 2 * n_matmul + 4 * n_layer * n_head * head_dim * T      (QK^T and AV over the full T: PaLM App. B)
  training = 3 * forward = 6 * n_matmul + 12 * n_layer * n_head * head_dim * T
The `causal` variant counts only the (T+1)/2 keys a query really attends to on average.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from lmlab.errors import ConfigError


@dataclass
class ModelConfig:
    vocab_size: int = 8192
    """Rows of the embedding table (tokenizer size, possibly padded)."""
    d_model: int = 256
    """Residual stream width."""
    n_layer: int = 4
    """Number of decoder blocks."""
    n_head: int = 4
    """Query heads; head_dim = d_model / n_head."""
    n_kv_head: int | None = None
    """Key/value heads for grouped-query attention (None = n_head, i.e. plain multi-head)."""
    d_ff: int | None = None
    """SwiGLU hidden width (None = 8/3 d_model rounded up to a multiple of 64, as in Llama)."""
    max_seq_len: int = 256
    """Longest context the model is trained and evaluated on."""
    rope_theta: float = 10000.0
    """RoPE base frequency."""
    norm_eps: float = 1e-5
    """RMSNorm epsilon."""
    tie_embeddings: bool = True
    """Share the token embedding with the output head (saves vocab x d parameters)."""
    init_std: float = 0.02
    """Std of the normal init; residual output projections get init_std / sqrt(2 n_layer) (GPT-2)."""

    def __post_init__(self):
        if self.n_kv_head is None:
            self.n_kv_head = self.n_head
        if self.d_ff is None:
            self.d_ff = 64 * math.ceil(8 * self.d_model / 3 / 64)
        if self.d_model % self.n_head or self.n_head % self.n_kv_head:
            raise ConfigError(f"d_model={self.d_model}, n_head={self.n_head}, n_kv_head={self.n_kv_head} "
                              "do not divide", "d_model % n_head == 0 and n_head % n_kv_head == 0")
        if (self.d_model // self.n_head) % 2:
            raise ConfigError("head_dim must be even for RoPE", "choose d_model / n_head even")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head


class RMSNorm(nn.Module):
    """RMSNorm (Zhang & Sennrich 2019), normalising in fp32 like HF Llama so bf16 runs stay stable."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


def rope_tables(cfg: ModelConfig, T: int, device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables, (T, head_dim), in HF's layout: frequencies repeated as [f, f] (not interleaved)."""
    hd = cfg.head_dim
    inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, hd, 2, device=device, dtype=torch.int64).float() / hd))
    freqs = torch.outer(torch.arange(T, device=device, dtype=torch.float32), inv_freq)  # (T, hd/2)
    emb = torch.cat((freqs, freqs), dim=-1)  # (T, hd)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate pairs (x_i, x_{i+hd/2}) by position-dependent angles. x: (B, nh, T, hd)."""
    x1, x2 = x.chunk(2, dim=-1)
    return x * cos + torch.cat((-x2, x1), dim=-1) * sin


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        hd = cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_head * hd, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.n_kv_head * hd, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.n_kv_head * hd, bias=False)
        self.o_proj = nn.Linear(cfg.n_head * hd, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        c = self.cfg
        q = self.q_proj(x).view(B, T, c.n_head, c.head_dim).transpose(1, 2)  # (B, nh, T, hd)
        k = self.k_proj(x).view(B, T, c.n_kv_head, c.head_dim).transpose(1, 2)  # (B, nkv, T, hd)
        v = self.v_proj(x).view(B, T, c.n_kv_head, c.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=c.n_kv_head != c.n_head)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, c.n_head * c.head_dim))


class MLP(nn.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.d_ff, bias=False)
        self.down_proj = nn.Linear(cfg.d_ff, cfg.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Sizes(NamedTuple):
    n_total: int
    """Every parameter once."""
    n_embedding: int
    """Token embedding table."""
    n_nonembed: int
    """Kaplan's N: all but vocabulary-sized matrices."""
    n_matmul: int
    """Block linears + lm_head: the weights FLOPs are counted on."""


class GPT(nn.Module):
    """Llama-architecture causal LM. forward(idx (B, T) int64) -> logits (B, T, vocab)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed_tokens.weight
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                nn.init.normal_(p, std=cfg.init_std / math.sqrt(2 * cfg.n_layer))

    def _init(self, m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=self.cfg.init_std)

    def hidden(self, idx: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """Final-normed hidden states (B, T, d): what the LM head reads; with `layer`, the residual stream after
        that many blocks instead (0 = the embeddings; for probes, e.g. the token-filtering classifier)."""
        B, T = idx.shape
        if self.cfg.max_seq_len < T:
            raise ValueError(f"sequence length {T} > max_seq_len {self.cfg.max_seq_len}")
        if layer is not None and not 0 <= layer <= len(self.layers):
            raise ValueError(f"layer {layer} outside [0, {len(self.layers)}]")
        x = self.embed_tokens(idx)  # (B, T, d)
        cos, sin = rope_tables(self.cfg, T, idx.device)
        for block in self.layers[:layer]:
            x = block(x, cos, sin)
        return x if layer is not None else self.norm(x)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None, weight: torch.Tensor | None = None,
                denom: float | None = None, ignore_index: int = -100) -> torch.Tensor:
        """Logits (B, T, vocab); or, given targets (B, T), the training loss — the value and gradients of
        lm_loss(logits, targets, weight, denom, ignore_index) without materialising fp32 logits
        (linear_cross_entropy). Targets equal to ignore_index (-100, as F.cross_entropy) count nowhere."""
        h = self.hidden(idx)
        if targets is None:
            return self.lm_head(h)
        return linear_cross_entropy(h.flatten(0, 1), self.lm_head.weight, targets.flatten(),
                                    None if weight is None else weight.flatten(), denom, ignore_index)

    # ---- weights I/O: a tied lm_head is stored once (safetensors refuses shared tensors) --------------
    def export_state(self) -> dict[str, torch.Tensor]:
        sd = self.state_dict()
        if self.cfg.tie_embeddings:
            sd.pop("lm_head.weight")
        return sd

    def import_state(self, sd: dict[str, torch.Tensor]) -> None:
        sd = dict(sd)
        if self.cfg.tie_embeddings:
            sd["lm_head.weight"] = sd["embed_tokens.weight"]
        self.load_state_dict(sd, strict=True)

    # ---- sizes and FLOPs -------------------------------------------------------------------------
    def sizes(self) -> Sizes:
        c = self.cfg
        n_total = sum(p.numel() for p in self.parameters())  # parameters() yields a tied tensor once
        n_emb = c.vocab_size * c.d_model
        n_vocab_mats = n_emb if c.tie_embeddings else 2 * n_emb
        n_block_linear = sum(m.weight.numel() for m in self.layers.modules() if isinstance(m, nn.Linear))
        return Sizes(n_total, n_emb, n_total - n_vocab_mats, n_block_linear + n_emb)

    def flops_per_token(self, seq_len: int | None = None, training: bool = True, causal: bool = False) -> float:
        """Matmul FLOPs per token (see module docstring); training = forward + backward (3x forward)."""
        c = self.cfg
        T = seq_len or c.max_seq_len
        keys = (T + 1) / 2 if causal else T
        fwd = 2 * self.sizes().n_matmul + 4 * c.n_layer * c.n_head * c.head_dim * keys
        return 3 * fwd if training else fwd

    def summary(self) -> str:
        s = self.sizes()
        return (f"GPT: {s.n_total / 1e6:.3f}M params (non-embedding {s.n_nonembed / 1e6:.3f}M, "
                f"matmul+head {s.n_matmul / 1e6:.3f}M); {self.flops_per_token() / 1e6:.2f} MFLOPs/token "
                f"training at T={self.cfg.max_seq_len}")


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor | None = None,
            denom: float | None = None, ignore_index: int = -100) -> torch.Tensor:
    """Next-token cross-entropy. logits (B, T, V), targets (B, T), weight (B, T) in {0, 1} or None.

    Returns sum(ce * weight) / denom (denom defaults to sum(weight) over targets != ignore_index, i.e.
    F.cross_entropy's mean): passing the global count of trained tokens makes micro-batches and data-parallel
    ranks add up to the exact global mean.
    """
    y = targets.flatten()
    ce = F.cross_entropy(logits.flatten(0, 1).float(), y, reduction="none", ignore_index=ignore_index)  # (B*T,)
    w = (y != ignore_index).to(ce.dtype)
    if weight is not None:
        w = w * weight.flatten().to(ce.dtype)
    return (ce * w).sum() / (denom if denom is not None else w.sum().clamp_min(1))


def linear_cross_entropy(h: torch.Tensor, W: torch.Tensor, y: torch.Tensor, w: torch.Tensor | None = None,
                         denom: float | None = None, ignore_index: int = -100) -> torch.Tensor:
    """sum_i w_i CE(h_i W^T, y_i) / denom over rows with y_i != ignore_index (denom defaults to the sum of
    their weights, as F.cross_entropy's mean). With autograd recording and an input that needs a gradient:
    LinearCrossEntropy (gradients made during the forward); otherwise (torch.no_grad, eval) the loss alone,
    chunk by chunk — no (N, V) logit-gradient buffer and no gradient matmuls."""
    valid = y != ignore_index
    w = valid.float() if w is None else w.float() * valid
    if denom is None:
        denom = w.sum().clamp_min(1).item()
    if torch.is_grad_enabled() and (h.requires_grad or W.requires_grad):
        return LinearCrossEntropy.apply(h, W, y, w, float(denom))
    return _lce_chunks(h, W, y, w, float(denom), want_grad=False)[0]


def _lce_chunks(h, W, y, w, denom: float, want_grad: bool):
    """(loss, dLoss/dlogits (N, V) in the compute dtype or None, (h, W) in the compute dtype): logits a chunk
    of rows at a time (matmul in the autocast dtype, softmax in fp32). Rows with w = 0 (ignored) add nothing;
    their y may be any value (ignore_index): it is replaced by 0 before indexing."""
    cdt = torch.get_autocast_dtype(h.device.type) if torch.is_autocast_enabled(h.device.type) else h.dtype
    hc, Wc = h.to(cdt), W.to(cdt)
    y = torch.where(w != 0, y, torch.zeros_like(y))
    G = torch.empty(h.shape[0], W.shape[0], dtype=cdt, device=h.device) if want_grad else None  # (N, V)
    total = torch.zeros((), dtype=torch.float32, device=h.device)
    rows = max(1, LinearCrossEntropy.CHUNK_ELEMENTS // W.shape[0])
    for i in range(0, h.shape[0], rows):
        sl = slice(i, i + rows)
        logits = (hc[sl] @ Wc.T).float()  # (n, V)
        lse = torch.logsumexp(logits, dim=-1)
        scale = w[sl] / denom
        total += ((lse - logits.gather(1, y[sl, None]).squeeze(1)) * scale).sum()
        if want_grad:
            g = logits.sub_(lse[:, None]).exp_()  # softmax, in place
            g[torch.arange(g.shape[0], device=g.device), y[sl]] -= 1.0
            G[sl] = g.mul_(scale[:, None])
    return total, G, (hc, Wc)


class LinearCrossEntropy(torch.autograd.Function):
    """sum_i w_i CE(h_i W^T, y_i) / denom, with its gradients computed during the forward.

    The plain path materialises fp32 logits, a fp32 log-softmax and, in backward, a fp32 gradient of the
    same (N, vocab) size plus a zero-filled one-hot scatter. Here the logits are made a chunk of rows at a
    time (matmul in the autocast dtype, softmax in fp32), and one pass over each chunk turns them into the
    loss and the logit gradient (softmax - onehot) * w / denom, stored once in the compute dtype; grad_h and
    grad_W are then two whole-size matmuls (chunked weight-gradient updates would re-write the V x d
    gradient per chunk, which is slower at large vocabularies). The idea is the "fused linear
    cross-entropy" of Liger-Kernel (Hsu et al. 2024). h: (N, d), W: (V, d), y: (N,) int64, w: (N,) or None.
    """

    CHUNK_ELEMENTS = 1 << 22  # rows per chunk = this / vocab: 16 MB of fp32 logits at a time

    @staticmethod
    def forward(ctx, h, W, y, w, denom):
        total, G, (hc, Wc) = _lce_chunks(h, W, y, w, denom, want_grad=True)  # G = dLoss/dlogits, (N, V)
        ctx.save_for_backward(G @ Wc, G.T @ hc)  # grad_h (N, d), grad_W (V, d), in the compute dtype
        ctx.dtypes = (h.dtype, W.dtype)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_W = ctx.saved_tensors
        return (grad_h * grad_out).to(ctx.dtypes[0]), (grad_W * grad_out).to(ctx.dtypes[1]), None, None, None

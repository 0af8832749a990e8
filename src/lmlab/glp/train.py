"""Train a GLP denoiser on an activation store (GLP §2.3 recipe, scaled for CPU budgets by the presets).

Data: the store's rows minus a held-out set (every row of documents with doc index % 20 == 19: 5% of the
documents, so held-out rows come from many documents), z-scored with the store's statistics. The batch of
step s is a pure function of (seed, s): epoch e = s // steps_per_epoch draws one permutation of the train rows
from default_rng([seed, e]) and step s takes the next global batch of it — no row twice in an epoch, exact
resume from a checkpoint, and K torchrun ranks take disjoint slices of the same global batch (DDP).
A sequence-aware prior (net.context = K > 0, glp/context.py) also gets, for every row, the previous K clean
activations of its document (the held-out split is by document, so a training row's context rows are training
rows too: checked before anything is written).
Optimiser: AdamW, linear warmup over `warmup_frac` of the steps then cosine to `min_lr_ratio`, global-norm
clipping, bf16 autocast with fp32 master weights, optional EMA of the weights (not in the paper).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from lmlab import dist
from lmlab.acts.store import batch_rows
from lmlab.config import check_literal, from_dict, preset
from lmlab.errors import ConfigError, DataError, NonFiniteLoss
from lmlab.glp.flow import fm_loss, sample_sigma
from lmlab.glp.net import GLP, Denoiser, DenoiserConfig, Normalizer, forward_flops
from lmlab.io import append_jsonl, save_safetensors, write_json
from lmlab.runs import checkpoint_steps


@dataclass
class GLPTrainConfig:
    net: DenoiserConfig = field(default_factory=DenoiserConfig)
    """Denoiser shape: d_in None = the store's width, d_model / d_mlp None = 2 / 4 x d_in (resolve_shape)."""
    store: str = ""
    """Activation store directory (lmlab acts harvest)."""
    batch_size: int = 1024
    """Global activations per optimizer step."""
    max_steps: int = 1000
    """Optimizer steps."""
    train_subset: int | None = None
    """Train on only this many of the store's training rows (None: all): the first n of one fixed permutation
    (independent of `seed`), so subsets are nested and every seed sees the same rows. With max_steps it sets the
    passes over the data (passes = max_steps x batch_size / n): the data-vs-epochs ablation of issue 19."""
    lr: float = 1e-3
    """Peak LR (the paper's 5e-5 is tuned for 244k steps; short CPU runs want ~1e-3: glp_cpu_baseline.md)."""
    warmup_frac: float = 0.01
    """Linear warmup as a fraction of max_steps (paper: 1%)."""
    min_lr_ratio: float = 0.1
    """Cosine floor (paper: 10% of peak)."""
    weight_decay: float = 0.01
    """AdamW weight decay (paper: torch default 0.01)."""
    grad_clip: float = 1.0
    """Global gradient-norm clip (paper: 1.0)."""
    adam_beta2: float = 0.999
    """AdamW's second-moment decay (paper: torch default 0.999). 0.95 tracks the gradient scale ~50x faster, the
    usual cure for loss spikes after rare outlier batches (a stale second moment under-scales their step)."""
    sigma: Literal["uniform", "logit_normal"] = "uniform"
    """Training noise-level distribution (paper: uniform)."""
    sigma_strata: int = 8
    """Uniform sigma only: each global batch draws its levels from one random coset of the 1000-level grid
    (flow.sample_sigma): same marginal as the paper, <= 1000/strata distinct levels per batch, so the
    deduplicated time path is ~strata times cheaper. 1 = iid levels, exactly as the paper."""
    dtype: Literal["auto", "fp32", "bf16"] = "auto"
    """bf16 autocast with fp32 master weights (paper), or fp32. auto: bf16 where the hardware computes it natively
    (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else fp32 (emulated bf16 trained 34x slower than fp32
    on an AVX2 CPU; dist.native_bf16). config.json records the resolved one."""
    ema: float | None = None
    """EMA decay of the weights (None: off, as in the paper). With warm-up: the decay at step t is
    min(ema, (1 + t) / (10 + t)). Evaluations, runs.csv rows and glp.safetensors then use the EMA weights
    (the raw ones are saved as glp.raw.safetensors)."""
    seed: int = 0
    """Seeds init, batches and noise."""
    log_every: int = 10
    """Steps between metrics rows."""
    ckpt_every: int = 200
    """Steps between resume checkpoints (evaluations and runs.csv rows come at log-spaced steps)."""
    runs_csv: str | None = None
    """runs.csv to append rows to (None: RUN/runs.csv); a sweep points all its runs at one file."""
    eval_rows: int = 4096
    """Held-out rows in each evaluation (fixed noise seed)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = cuda when available."""
    log: list[str] = field(default_factory=list)
    """Experiment trackers beside metrics.jsonl: "tensorboard" (RUN/tb/) and/or "wandb" (offline unless WANDB_MODE
    says otherwise; RUN/wandb/). Needs pip install 'lmlab[tracking]'; a resume may change it."""

    def __post_init__(self):
        if isinstance(self.net, dict):
            self.net = from_dict(DenoiserConfig, self.net)
        check_literal(self)
        if self.sigma_strata < 1 or 1000 % self.sigma_strata:
            raise ConfigError(f"sigma_strata={self.sigma_strata} must divide 1000", "use 1, 2, 4, 5, 8, 10, ...")
        if not 0.0 < self.adam_beta2 < 1.0:
            raise ConfigError(f"adam_beta2={self.adam_beta2} must lie in (0, 1)", "use e.g. 0.999 or 0.95")
        if min(self.batch_size, self.max_steps) < 1:
            raise ConfigError("batch_size and max_steps must be >= 1", "fix the config")
        if self.train_subset is not None and self.train_subset < self.batch_size:
            raise ConfigError(f"train_subset={self.train_subset} is smaller than one batch ({self.batch_size})",
                              "use train_subset >= batch_size, or null for every training row")


# Presets leave d_in to the store (any model's store trains with no flags) and, but for `tiny`, the widths to
# the paper's family (d_model 2 d_in, d_mlp 4 d_in); resolve_shape fills the numbers in before config.json.
@preset("glp")
def tiny() -> GLPTrainConfig:
    """CI-sized GLP: seconds on a CPU (fixed small widths 128 / 256 whatever the store's d)."""
    return GLPTrainConfig(net=DenoiserConfig(n_layers=1, d_model=128, d_mlp=256), batch_size=256, max_steps=40,
                          log_every=5, eval_rows=512)


def _smollm2(depth: int) -> GLPTrainConfig:
    return GLPTrainConfig(net=DenoiserConfig(n_layers=depth), batch_size=1024, max_steps=2000)


@preset("glp", "smollm2-d3")
def smollm2_d3() -> GLPTrainConfig:
    """The paper's widths (d_model 2d, d_mlp 4d) at the store's d (SmolLM2: 576), depth 3."""
    return _smollm2(3)


@preset("glp", "smollm2-d6")
def smollm2_d6() -> GLPTrainConfig:
    return _smollm2(6)


@preset("glp", "smollm2-d12")
def smollm2_d12() -> GLPTrainConfig:
    return _smollm2(12)


def _paper_llama1b(depth: int) -> GLPTrainConfig:
    # glp.md §2-3: Llama-3.2-1B (d=2048), d_model 4096, d_mlp 8192; AdamW 5e-5, warmup 1%, cosine to 10%, clip 1,
    # bf16 autocast, batch 4096, one pass over 1B activations (244,140 steps), iid uniform sigma
    return GLPTrainConfig(net=DenoiserConfig(n_layers=depth), batch_size=4096, max_steps=244_140,
                          lr=5e-5, sigma_strata=1, ckpt_every=7812, log_every=10, eval_rows=16384)


@preset("glp", "paper-llama1b-d3")
def paper_llama1b_d3() -> GLPTrainConfig:
    """The paper's glp-llama1b-d3 (453,117,952 params) and its training recipe, for GPU users."""
    return _paper_llama1b(3)


@preset("glp", "paper-llama1b-d6")
def paper_llama1b_d6() -> GLPTrainConfig:
    return _paper_llama1b(6)


@preset("glp", "paper-llama1b-d12")
def paper_llama1b_d12() -> GLPTrainConfig:
    return _paper_llama1b(12)


@preset("glp", "paper-llama1b-d24")
def paper_llama1b_d24() -> GLPTrainConfig:
    return _paper_llama1b(24)


def resolve_shape(cfg: GLPTrainConfig, d: int) -> GLPTrainConfig:
    """`cfg` with the denoiser's shape resolved for a store of width d: d_in None becomes d (d_model, d_mlp None
    become 2 d, 4 d). An explicit d_in other than d is a one-line DataError."""
    if cfg.net.d_in is not None and cfg.net.d_in != d:
        raise DataError(f"the store holds d={d} activations, the GLP expects d_in={cfg.net.d_in}",
                        f"drop --set net.d_in (the store's width is used) or use --set net.d_in={d}")
    return replace(cfg, net=replace(cfg.net, d_in=d))


def lr_at(cfg: GLPTrainConfig, step: int) -> float:
    warm = max(1, int(cfg.warmup_frac * cfg.max_steps))
    if step < warm:
        return cfg.lr * (0.01 + 0.99 * (step + 1) / warm)  # paper: warmup factor 0.01 -> 1
    frac = (step - warm) / max(1, cfg.max_steps - warm)
    lo = cfg.lr * cfg.min_lr_ratio
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * min(1.0, frac)))


def _noise(cfg: GLPTrainConfig, step: int, shape: tuple[int, int], rank: int, world: int, device=None):
    """Noise and sigmas of the global batch of `step`, this rank's slice (so K ranks = 1 process). On CUDA the
    noise is drawn there (a CPU randn of 4096 x 2048 would bound the step); the stream then differs from the
    CPU one, and resuming stays exact on the same kind of device."""
    dev = device if device is not None and device.type == "cuda" else torch.device("cpu")
    g = torch.Generator(dev).manual_seed(cfg.seed * 1_000_003 + step)
    strata = cfg.sigma_strata if cfg.sigma == "uniform" else 1
    sigma = sample_sigma(shape[0] * world, cfg.sigma, generator=g, strata=strata, device=dev)
    eps = torch.randn(shape[0] * world, shape[1], generator=g, device=dev)
    return sigma[rank::world], eps[rank::world]


def subset_rows(train_rows: np.ndarray, n: int | None) -> np.ndarray:
    """The first n training rows of one fixed permutation (sorted; nested in n; the same for every seed)."""
    if n is None:
        return train_rows
    if n > len(train_rows):
        raise DataError(f"train_subset={n} but the store has {len(train_rows)} training rows",
                        "harvest more activations or lower train_subset")
    return np.sort(train_rows[np.random.default_rng(0x61D).permutation(len(train_rows))[:n]])


def heldout_set(store, held: np.ndarray, cfg: GLPTrainConfig, glp: GLP, device, index: np.ndarray | None = None):
    """Fixed held-out rows, noise and sigmas (seeded once): the eval loss is comparable across checkpoints.
    (z, sigma, eps), plus (ctx z-scored (n, K, d), mask (n, K)) for a context prior (`index`: its
    context.context_index over the store, computed here when None)."""
    from lmlab.glp.context import context_index, gather_context

    rng = np.random.default_rng([cfg.seed, 12345])
    rows = np.sort(rng.choice(held, size=min(len(held), cfg.eval_rows), replace=False))
    g = torch.Generator().manual_seed(12345)
    z = glp.encode(store.get(rows).to(device))
    ev = z, sample_sigma(len(rows), cfg.sigma, generator=g).to(device), torch.randn(z.shape, generator=g).to(device)
    if not (k := glp.net.cfg.context):
        return ev
    index = context_index(store.provenance(), k) if index is None else index
    ctx, mask = gather_context(store, index[rows])
    return (*ev, glp.encode(ctx.to(device)), mask.to(device))


def with_context(model, ctx: torch.Tensor | None = None, mask: torch.Tensor | None = None):
    """`model` as the (x, sigma) callable that fm_loss and the samplers call, with a context prior's
    z-scored context (B, K, d) and mask (B, K) bound (ctx None: `model` itself)."""
    from functools import partial

    return model if ctx is None else partial(model, ctx=ctx, ctx_mask=mask)


@torch.no_grad()
def heldout_loss(glp: GLP, ev) -> float:
    """Mean flow-matching loss on a fixed held-out set (`heldout_set`)."""
    z, sigma, eps, *c = ev
    tot = 0.0
    for i in range(0, len(z), 1024):
        sl = slice(i, i + 1024)
        tot += fm_loss(with_context(glp, *(t[sl] for t in c)), z[sl], sigma[sl], eps[sl]).item() * len(z[sl])
    return tot / len(z)


def build_glp(cfg: GLPTrainConfig, store, device) -> tuple[GLP, torch.optim.AdamW]:
    cfg = resolve_shape(cfg, store.d_model)
    torch.manual_seed(cfg.seed)
    st = store.stats
    glp = GLP(Denoiser(cfg.net), Normalizer(st["mean"], st["var"])).to(device)
    # fused: one kernel per step over all parameters (CPU and CUDA); same update as the paper's default AdamW
    opt = torch.optim.AdamW(glp.net.parameters(), lr=cfg.lr, betas=(0.9, cfg.adam_beta2),
                            weight_decay=cfg.weight_decay, fused=True)
    return glp, opt


def load_batch(cfg, store, train_rows, step, rank, world, device, index: np.ndarray | None = None):
    """(x raw (B, d), sigma (B,), eps (B, d)) of `step` for this rank, on `device`: a pure function of the step.
    With a context index (context.context_index; a context prior) also (ctx raw (B, K, d), mask (B, K))."""
    from lmlab.glp.context import gather_context

    cuda = device.type == "cuda"
    rows = batch_rows(train_rows, cfg.batch_size, cfg.seed, step, rank, world)
    x = store.get(rows, raw=cuda)  # GPU: copy bf16, convert there
    sigma, eps = _noise(cfg, step, tuple(x.shape), rank, world, device)
    if cuda:
        x = x.pin_memory().to(device, non_blocking=True).float()
    if not torch.isfinite(x).all():
        raise DataError(f"NaN/inf in the activation batch of step {step + 1}", "verify/re-harvest the store")
    if index is None:
        return x, sigma, eps
    ctx, mask = gather_context(store, index[rows])  # (B, K, d), (B, K)
    if not torch.isfinite(ctx).all():
        raise DataError(f"NaN/inf in the context rows of step {step + 1}", "verify/re-harvest the store")
    return x, sigma, eps, ctx.to(device), mask.to(device)


def train_step(cfg, model, glp, opt, batch, step, world) -> dict:
    """One optimizer step on a prepared batch (load_batch); returns {"loss": the global mean loss, "grad_norm":
    the global gradient norm before clipping} (a spike from an outlier batch shows in the second)."""
    x, sigma, eps, *c = batch  # c: a context prior's (ctx raw, mask)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bf16"):
        ctx = (glp.encode(c[0]), c[1]) if c else ()
        loss = fm_loss(with_context(model, *ctx), glp.encode(x), sigma, eps)
    loss.backward()  # DDP averages the ranks' (equal-sized) mean losses' gradients: the global mean
    lv = loss.detach().clone()
    if world > 1:
        torch.distributed.all_reduce(lv)
        lv /= world
    if not math.isfinite(lv.item()):
        raise NonFiniteLoss(f"non-finite GLP loss at step {step + 1}", "lower lr or use dtype=fp32; resume from the checkpoint")
    gnorm = torch.nn.utils.clip_grad_norm_(glp.net.parameters(), cfg.grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return {"loss": lv.item(), "grad_norm": float(gnorm)}


def train_glp(cfg: GLPTrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train to cfg.max_steps; RUN/{config.json, metrics.jsonl, runs.csv, ckpt/, glp.safetensors, summary.json}."""
    from lmlab import runs
    from lmlab.acts.store import open_for_training
    from lmlab.runs import checkpoint, tracking
    from lmlab.runs.mfu import peak_flops

    out, owns = Path(out), not dist.is_distributed()
    device = dist.device(cfg.device)
    dist.init(device.type)
    cfg = replace(cfg, dtype=dist.compute_dtype(cfg.dtype, device))  # config.json records what ran
    rank, world = dist.rank(), dist.world_size()
    store, train_rows, held = open_for_training(cfg.store, cfg.batch_size, world)
    train_rows = subset_rows(train_rows, cfg.train_subset)
    cfg = resolve_shape(cfg, store.d_model)  # config.json records the resolved widths
    index = _context_index(store, cfg.net.context, held)  # None for the single-token prior
    glp, opt = build_glp(cfg, store, device)
    ema = copy.deepcopy(glp.net).requires_grad_(False) if cfg.ema else None
    scored = glp if ema is None else GLP(ema, glp.normalizer)  # what evaluations and the artifact use
    saved = glp.net if ema is None else torch.nn.ModuleDict({"net": glp.net, "ema": ema})  # checkpointed
    runs_csv = Path(cfg.runs_csv or out / runs.RUNS_CSV)
    tracking.check(cfg.log)  # a missing tracker package fails before anything is written
    start = runs.start_run(out, asdict(cfg), resume, runs_csv, runs.run_name(out), what="GLP run",
                           restore=(saved, opt), defaults=asdict(GLPTrainConfig()))
    dist.print0(glp.net.summary())
    model = dist.ddp(glp, device)
    ev, n = heldout_set(store, held, cfg, glp, device, index), sum(p.numel() for p in glp.net.parameters())
    fpa = 3 * forward_flops(glp.net.cfg)  # = 6 N for the single-token prior (the paper's count)

    def step_fn(step: int, batch) -> dict:
        for gr in opt.param_groups:
            gr["lr"] = lr_at(cfg, step)
        m = train_step(cfg, model, glp, opt, batch, step, world)
        if ema is not None:
            _ema_update(ema, glp.net, min(cfg.ema, (1 + step) / (10 + step)))
        return {**m, "lr": opt.param_groups[0]["lr"]}

    # MFU with the paper's 6 N FLOPs per activation (the time path the trainer deduplicates is counted; a context
    # prior adds its per-slot context projections, net.forward_flops)
    with tracking.Tracker(out, cfg.log, asdict(cfg), start) as tracker:
        last = runs.train_loop(out, range(start, cfg.max_steps),
                               lambda s: load_batch(cfg, store, train_rows, s, rank, world, device, index),
                               step_fn, batch_size=cfg.batch_size, flops_per_sample=fpa, peak=peak_flops(device, cfg.dtype) * world,
                               log_every=cfg.log_every, ckpt_every=cfg.ckpt_every, evals=set(checkpoint_steps(cfg.max_steps)),
                               on_eval=lambda done, m: _eval_row(cfg, out, runs_csv, scored, ev, n, done, m["loss"], fpa),
                               save=lambda done: checkpoint.save(out, saved, opt, {"step": done}), progress=progress,
                               tracker=tracker)
    if ema is not None and dist.is_main():
        save_safetensors(out / "glp.raw.safetensors", glp.state_dict())
    summary = _finish(cfg, out, scored, n, last) if dist.is_main() else {}
    dist.barrier()
    if owns:
        dist.cleanup()
    return summary


def _context_index(store, k: int, held: np.ndarray) -> np.ndarray | None:
    """A context prior's context.context_index over the whole store, checked (some training row has context,
    none of it held out) before anything is written; None when k = 0."""
    from lmlab.glp.context import check_context, context_index

    if not k:
        return None
    index = context_index(store.provenance(), k)
    check_context(index, np.setdiff1d(np.arange(len(store)), held), held)
    return index


def _eval_row(cfg: GLPTrainConfig, out: Path, runs_csv: Path, scored: GLP, ev, n: int, done: int, loss: float,
              fpa: int) -> dict:
    """Held-out loss at a log-spaced step: a metrics.jsonl eval row and a runs.csv row (C = fpa D: 6 N D for the
    single-token prior)."""
    from lmlab import runs
    from lmlab.runs import table

    last = {"step": done, "heldout_loss": heldout_loss(scored, ev), "activations": done * cfg.batch_size}
    append_jsonl(out / runs.METRICS, {"step": done, "eval": last})
    table.append_row(runs_csv, {"run": runs.run_name(out), "step": done, "N": n, "D": done * cfg.batch_size,
                                "C": fpa * done * cfg.batch_size, "loss": last["heldout_loss"],
                                "train_loss": loss, "depth": cfg.net.n_layers})
    return last


@torch.no_grad()
def _ema_update(ema: torch.nn.Module, net: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * net, all parameters in one foreach call."""
    torch._foreach_lerp_(list(ema.parameters()), list(net.parameters()), 1.0 - decay)


def _finish(cfg: GLPTrainConfig, out: Path, glp: GLP, n: int, last: dict) -> dict:
    from lmlab.runs import SUMMARY

    save_safetensors(out / "glp.safetensors", glp.state_dict())
    summary = {"params": n, "steps": cfg.max_steps, "activations": cfg.max_steps * cfg.batch_size,
               "final_eval": last, "store": cfg.store}
    write_json(out / SUMMARY, summary)
    return summary

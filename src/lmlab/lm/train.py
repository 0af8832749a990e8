"""Train a Llama-architecture LM from scratch on token shards.

AdamW (decoupled weight decay on matrices only, nanoGPT `configure_optimizers`), linear warmup then cosine
or warmup-stable-decay (WSD; Hu et al. 2024, MiniCPM) schedules, global-norm gradient clipping, gradient
accumulation, optional bf16 autocast and torch.compile, per-domain held-out eval, metrics.jsonl + runs.csv.

Token filtering (Rathi & Radford 2026, §3.1): the shard's float16 side channel holds a per-token score;
a token is flagged when score >= mask_threshold. `mask` chooses which positions lose their loss:
  input   the prediction made *at* a flagged input token (the paper's released code)
  target  the prediction *of* a flagged token (the literal "no gradient from forget tokens")
  union   both
`removal` also replaces flagged input tokens (and flagged targets) with the reserved <|hidden|> token.

Exact resume: the batch of step s is drawn from a generator seeded by (seed, s), so the data position is
the step; model, AdamW state and RNG states are checkpointed (lm/checkpoint.py). Data parallel: launch
with `torchrun --nproc_per_node K -m lmlab lm train ...`; each rank takes a slice of the same global batch
and every loss is divided by the *global* count of trained tokens, so K processes follow the 1-process
loss curve up to floating-point reduction order.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from lmlab import dist
from lmlab.config import check_literal, from_dict, preset
from lmlab.errors import ConfigError, DataError, NonFiniteLoss
from lmlab.io import append_jsonl, read_json, save_safetensors, write_json
from lmlab.lm.model import GPT, ModelConfig, lm_loss
from lmlab.runs import CONFIG, SUMMARY


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture (vocab_size is taken from the dataset's tokenizer)."""
    data: str = "embedded"
    """Prepared dataset directory (`lmlab data prepare`), or "embedded" for the embedded corpus, cached."""
    seed: int = 0
    """Seeds the init and the batch sampler."""
    batch_size: int = 16
    """Global sequences per optimizer step (all ranks and micro-batches together)."""
    micro_batch_size: int | None = None
    """Sequences per forward pass on one rank (None: batch_size / world size, i.e. no accumulation)."""
    seq_len: int = 256
    """Tokens per training sequence (<= model.max_seq_len)."""
    max_steps: int = 1000
    """Optimizer steps."""
    lr: float = 3e-3
    """Peak learning rate."""
    min_lr_ratio: float = 0.1
    """Final LR as a fraction of the peak."""
    warmup_steps: int = 50
    """Linear warmup steps."""
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"
    """LR shape after warmup: cosine decay, warmup-stable-decay, or constant."""
    decay_frac: float = 0.2
    """WSD: fraction of steps in the final (linear) decay."""
    beta1: float = 0.9
    """AdamW beta1."""
    beta2: float = 0.95
    """AdamW beta2 (0.95 is the usual LM choice; 0.999 for tiny batches)."""
    weight_decay: float = 0.1
    """Decoupled weight decay, applied to 2-D weights only."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0: off)."""
    dtype: Literal["auto", "fp32", "bf16"] = "fp32"
    """fp32, or bf16 autocast for matmuls (weights and optimizer stay fp32); auto: bf16 where the hardware computes
    it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else fp32 (dist.native_bf16).
    config.json records the resolved one."""
    compile: bool = False
    """torch.compile the model (first steps slower; checkpoints hold the un-compiled weights)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = cuda when available."""
    eval_every: int = 100
    """Steps between held-out evaluations (and runs.csv rows); always at the end too."""
    eval_windows: int = 32
    """Sequences per domain in each held-out eval."""
    log_every: int = 10
    """Steps between metrics.jsonl rows."""
    ckpt_every: int = 100
    """Steps between checkpoints (0: only at the end)."""
    mask: Literal["none", "input", "target", "union"] = "none"
    """Loss mask from the side channel: which positions lose their loss (module docstring)."""
    mask_threshold: float = 0.5
    """A token is flagged when its side-channel score >= this."""
    removal: bool = False
    """Replace flagged tokens with <|hidden|> (needs mask != none and a tokenizer with <|hidden|>)."""
    reverse: bool = False
    """Right-to-left LM: every training and eval window is read backwards (the biLM's second half, filtering/)."""
    runs_csv: str | None = None
    """runs.csv to append rows to (None: RUN/runs.csv). Point a sweep's runs at one file."""
    name: str | None = None
    """Run label in runs.csv (None: the run directory's name)."""
    log: list[str] = field(default_factory=list)
    """Experiment trackers beside metrics.jsonl: "tensorboard" (RUN/tb/) and/or "wandb" (offline unless WANDB_MODE
    says otherwise; RUN/wandb/). Needs pip install 'lmlab[tracking]'; a resume may change it."""

    def __post_init__(self):
        if isinstance(self.model, dict):
            self.model = from_dict(ModelConfig, self.model)
        check_literal(self)
        if self.seq_len > self.model.max_seq_len:
            raise ConfigError(f"seq_len {self.seq_len} > model.max_seq_len {self.model.max_seq_len}",
                              "raise model.max_seq_len or lower seq_len")
        if self.removal and self.mask == "none":
            raise ConfigError("removal=true needs a loss mask", "also set mask=input (paper) or mask=union")
        if min(self.batch_size, self.max_steps) < 1:
            raise ConfigError("batch_size and max_steps must be >= 1", "fix the config")


# ---- presets (plain functions, torchtitan-style) ----------------------------------------------------
@preset("lm")
def tiny() -> TrainConfig:
    """Debug model for tests: seconds per hundred steps on a CPU."""
    return TrainConfig(model=ModelConfig(d_model=64, n_layer=2, n_head=4, max_seq_len=64), seq_len=64,
                       batch_size=8, max_steps=50, lr=3e-3, warmup_steps=5, eval_every=25, eval_windows=8,
                       log_every=1, ckpt_every=10)


@preset("lm")
def demo() -> TrainConfig:
    """The `lmlab demo` model: 3.3M params at vocab 8192, ~4 minutes on 2 CPU cores (bf16 autocast where native)."""
    return TrainConfig(model=ModelConfig(d_model=192, n_layer=4, n_head=6, max_seq_len=128), seq_len=128,
                       batch_size=16, max_steps=900, lr=3e-3, warmup_steps=50, eval_every=100, eval_windows=32,
                       log_every=10, ckpt_every=100, dtype="auto")


@preset("lm")
def small() -> TrainConfig:
    """~8M params at vocab 8192: a CPU scaling-sweep point."""
    return TrainConfig(model=ModelConfig(d_model=256, n_layer=6, n_head=8, max_seq_len=256), seq_len=256,
                       batch_size=32, max_steps=2000, lr=2e-3, warmup_steps=100, dtype="auto")


@preset("lm")
def gpt100m() -> TrainConfig:
    """~100M params (d=768, 12 layers): the GPU MFU reference configuration."""
    return TrainConfig(model=ModelConfig(d_model=768, n_layer=12, n_head=12, max_seq_len=1024), seq_len=1024,
                       batch_size=64, micro_batch_size=16, max_steps=5000, lr=6e-4, warmup_steps=200,
                       dtype="bf16", compile=True, device="cuda")


# ---- learning-rate schedule -------------------------------------------------------------------------
def lr_at(cfg: TrainConfig, step: int) -> float:
    """LR for optimizer step `step` (0-based)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    lo = cfg.lr * cfg.min_lr_ratio
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "wsd":
        decay_start = cfg.max_steps - int(cfg.decay_frac * cfg.max_steps)
        if step < decay_start:
            return cfg.lr
        frac = (step - decay_start + 1) / max(1, cfg.max_steps - decay_start)
        return cfg.lr + (lo - cfg.lr) * frac
    frac = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return lo + 0.5 * (cfg.lr - lo) * (1 + math.cos(math.pi * min(1.0, frac)))


# ---- token filtering --------------------------------------------------------------------------------
def filter_batch(cfg: TrainConfig, x, y, side_x, side_y, hidden_id: int | None):
    """Apply loss masking / removal. Returns (x, y, weight) with weight (B, T) in {0, 1} or None."""
    if cfg.mask == "none":
        return x, y, None
    if side_x is None:
        raise DataError("mask is set but the training shard has no side channel (train.side)",
                        "write per-token scores with lmlab.data.shards.write_side, or use mask=none")
    fx, fy = side_x >= cfg.mask_threshold, side_y >= cfg.mask_threshold
    keep = {"input": ~fx, "target": ~fy, "union": ~(fx | fy)}[cfg.mask]
    if cfg.removal:
        if hidden_id is None:
            raise DataError("removal needs a <|hidden|> token", "use an lmlab-trained tokenizer")
        x = x.masked_fill(fx, hidden_id)
        y = y.masked_fill(fy, hidden_id)
    return x, y, keep.float()


# ---- data -------------------------------------------------------------------------------------------
def resolve_data(spec: str) -> Path:
    """A prepared dataset directory; "embedded" builds (once) the default one in the user cache."""
    from lmlab.data.prepare import DataConfig, prepare_dataset

    if spec == "embedded":
        from lmlab.data.corpus import cache_root

        out = cache_root() / "datasets" / "embedded-bpe8192"
        if dist.is_main():  # rank 0 builds; the others wait, then find it complete
            prepare_dataset(DataConfig(), out)
        dist.barrier()
        return prepare_dataset(DataConfig(), out, progress=False)
    path = Path(spec)
    if not (path / "meta.json").is_file():
        raise DataError(f"{spec} is not a prepared dataset (no meta.json)",
                        f"run `lmlab data prepare --out {spec}` first, or pass --data embedded")
    return path


def batch_starts(cfg: TrainConfig, step: int, n_tokens: int) -> np.ndarray:
    """Start offsets of the global batch of `step` — a pure function of (seed, step): exact resume."""
    rng = np.random.default_rng([cfg.seed, step])
    return rng.integers(0, n_tokens - cfg.seq_len - 1, size=cfg.batch_size, dtype=np.int64)


# ---- the loop ---------------------------------------------------------------------------------------
class _Run:
    """State of one training run (kept small: the loop itself is in `train`)."""

    def __init__(self, cfg: TrainConfig, out: Path):
        from lmlab import runs
        from lmlab.data.shards import open_shard
        from lmlab.data.tokenizer import Tokenizer

        self.cfg, self.out = cfg, out
        self.device = dist.device(cfg.device)
        self.data = resolve_data(cfg.data)
        self.meta = read_json(self.data / "meta.json")
        self.tok = Tokenizer.load(self.data)
        self.train = open_shard(self.data / "train.bin")
        if len(self.train) <= cfg.seq_len + 1:
            raise DataError(f"train.bin has {len(self.train)} tokens", "prepare more data or lower seq_len")
        self.val = {d: open_shard(self.data / f"val.{d}.bin") for d in self.meta["val_sets"]}
        self.world, self.rank = dist.world_size(), dist.rank()
        if cfg.batch_size % self.world:
            raise ConfigError(f"batch_size {cfg.batch_size} not divisible by {self.world} ranks", "adjust batch_size")
        self.per_rank = cfg.batch_size // self.world
        self.micro = cfg.micro_batch_size or self.per_rank
        if self.per_rank % self.micro:
            raise ConfigError(f"per-rank batch {self.per_rank} not divisible by micro_batch_size {self.micro}",
                              "choose micro_batch_size dividing batch_size / world size")
        self.runs_csv = Path(cfg.runs_csv) if cfg.runs_csv else out / runs.RUNS_CSV
        self.name = runs.run_name(out, cfg.name)
        self.tracker = None  # runs.tracking.Tracker, opened by `train`


def _autocast(run: _Run):
    import contextlib

    if run.cfg.dtype == "bf16":
        return torch.autocast(run.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (dim >= 2) only; norms' gains are not decayed."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), eps=1e-8, foreach=True)


def train_step(run: _Run, model, optim, step: int) -> dict:
    """One optimizer step over the global batch; returns {loss, grad_norm, trained_tokens}."""
    cfg = run.cfg
    starts = batch_starts(cfg, step, len(run.train))
    weights = _global_weights(run, starts)
    denom = float(weights.sum()) if weights is not None else float(starts.size * cfg.seq_len)
    mine = starts[run.rank * run.per_rank:(run.rank + 1) * run.per_rank]
    n_micro = len(mine) // run.micro
    loss_sum = torch.zeros((), device=run.device)
    for m in range(n_micro):
        from lmlab.data.shards import windows

        x, y, sx, sy = windows(run.train, mine[m * run.micro:(m + 1) * run.micro], cfg.seq_len, cfg.reverse)
        x, y, w = filter_batch(cfg, x, y, sx, sy, run.tok.hidden_id)
        x, y = x.to(run.device), y.to(run.device)
        w = w.to(run.device) if w is not None else None
        sync = m == n_micro - 1 or run.world == 1
        ctx = model.no_sync() if (not sync and hasattr(model, "no_sync")) else _null()
        with ctx:
            with _autocast(run):
                loss = model(x, y, w, max(denom, 1.0))  # fused LM head + cross-entropy (model.py)
            # DDP averages gradients over ranks; the loss is already a global mean, so undo that average.
            (loss * run.world).backward()
        loss_sum += loss.detach()
    if run.world > 1:
        torch.distributed.all_reduce(loss_sum)
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip if cfg.grad_clip > 0 else float("inf"))
    loss_v = loss_sum.item()
    if not math.isfinite(loss_v):
        raise NonFiniteLoss(f"non-finite training loss ({loss_v}) at step {step + 1}",
                            "lower lr, use dtype=fp32, or check the data; resume from the last checkpoint")
    optim.step()
    optim.zero_grad(set_to_none=True)
    return {"loss": loss_v, "grad_norm": gnorm.item(), "trained_tokens": denom}


def _null():
    import contextlib

    return contextlib.nullcontext()


def _global_weights(run: _Run, starts: np.ndarray) -> np.ndarray | None:
    """Loss weights of the whole global batch (every rank computes them: they fix the denominator)."""
    cfg = run.cfg
    if cfg.mask == "none":
        return None
    from lmlab.data.shards import windows

    x, y, sx, sy = windows(run.train, starts, cfg.seq_len, cfg.reverse)
    return filter_batch(cfg, x, y, sx, sy, run.tok.hidden_id)[2].numpy()


@torch.no_grad()
def evaluate(run: _Run, model) -> dict[str, float]:
    """Mean next-token loss per held-out domain (no mask) and pooled over domains (token-weighted)."""
    from lmlab.data.shards import eval_starts, windows

    model.eval()
    out, tot, n_tot = {}, 0.0, 0
    for domain, shard in run.val.items():
        starts = eval_starts(shard, run.cfg.seq_len, run.cfg.eval_windows)
        mine = starts[run.rank::run.world]
        s = torch.zeros(2, dtype=torch.float64, device=run.device)
        for i in range(0, len(mine), run.micro):
            x, y, _, _ = windows(shard, mine[i:i + run.micro], run.cfg.seq_len, run.cfg.reverse)
            with _autocast(run):
                logits = model(x.to(run.device))
            s[0] += lm_loss(logits, y.to(run.device), denom=1.0).double()
            s[1] += y.numel()
        if run.world > 1:
            torch.distributed.all_reduce(s)
        out[f"loss_{domain}"] = (s[0] / s[1]).item()
        tot, n_tot = tot + s[0].item(), n_tot + int(s[1].item())
    out["loss"] = tot / max(n_tot, 1)
    model.train()
    return out


# ---- driver -----------------------------------------------------------------------------------------
def train(cfg: TrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train to cfg.max_steps, writing RUN/{config.json, metrics.jsonl, runs.csv, ckpt/, model.safetensors,
    tokenizer.json, summary.json}. With resume=True, continue exactly from RUN/ckpt. Returns the summary."""
    from lmlab import runs
    from lmlab.progress import train_bar
    from lmlab.runs import checkpoint, tracking

    out = Path(out)
    owns_group = not dist.is_distributed()
    device = dist.device(cfg.device)
    dist.init(device.type)
    cfg.dtype = dist.compute_dtype(cfg.dtype, device)  # config.json records what ran
    run = _Run(cfg, out)
    cfg.model.vocab_size = run.tok.vocab_size  # the architecture follows the dataset's tokenizer
    tracking.check(cfg.log)  # a missing tracker package fails before anything is written
    start = runs.start_run(out, _saved_config(cfg), resume, run.runs_csv, run.name,
                           defaults=_saved_config(TrainConfig()))
    state = {"step": 0, "tokens": 0, "trained_tokens": 0.0, "last_eval": {}}
    torch.manual_seed(cfg.seed)
    raw = GPT(cfg.model).to(run.device)
    optim = build_optimizer(cfg, raw)
    if start:
        state = checkpoint.load(checkpoint.latest(out), raw, optim)
    dist.print0(raw.summary())
    model = _wrap(run, raw)
    clock = _Clock(run, raw)
    tracker = run.tracker = tracking.Tracker(out, cfg.log, _saved_config(cfg), start, run.name)
    with tracker, train_bar(progress and dist.is_main(), cfg.max_steps, start) as bar:
        for step in range(start, cfg.max_steps):
            for g in optim.param_groups:
                g["lr"] = lr_at(cfg, step)
            m = train_step(run, model, optim, step)
            state["tokens"] += cfg.batch_size * cfg.seq_len
            state["trained_tokens"] += m["trained_tokens"]
            done = step + 1
            state.setdefault("first_loss", m["loss"])
            row = clock.row(done, m, optim.param_groups[0]["lr"], state)
            if dist.is_main() and runs.due(done, cfg.log_every, cfg.max_steps):
                append_jsonl(out / runs.METRICS, row)
                tracker.log(done, row)
            if runs.due(done, cfg.eval_every, cfg.max_steps):
                state["last_eval"] = _eval_row(run, model, raw, done, row, state)
            if runs.due(done, cfg.ckpt_every, cfg.max_steps):
                state["step"] = done
                if dist.is_main():
                    checkpoint.save(out, raw, optim, state)
                dist.barrier()
            bar(done, row)
    summary = _finish(run, raw, state, clock) if dist.is_main() else {}
    dist.barrier()
    if owns_group:
        dist.cleanup()
    return summary


def _saved_config(cfg: TrainConfig) -> dict:
    return {"model": asdict(cfg.model), "train": asdict(cfg)}


def _wrap(run: _Run, raw: GPT):
    """DDP when launched by torchrun (dist.ddp), then compile."""
    model = dist.ddp(raw, run.device)
    if run.cfg.compile:
        model = torch.compile(model)
    return model


def _eval_row(run: _Run, model, raw: GPT, done: int, row: dict, state: dict) -> dict:
    from lmlab.runs import METRICS, table

    ev = evaluate(run, model)
    if dist.is_main():
        s = raw.sizes()
        append_jsonl(run.out / METRICS, {"step": done, "eval": ev})
        if run.tracker is not None:
            run.tracker.log(done, ev, "eval")
        table.append_row(run.runs_csv, {
            "run": run.name, "step": done, "N": s.n_nonembed, "N_total": s.n_total, "N_nonembed": s.n_nonembed,
            "N_matmul": s.n_matmul, "D": state["tokens"],
            "C": raw.flops_per_token(run.cfg.seq_len) * state["tokens"], "C_6ND": 6 * s.n_total * state["tokens"],
            "loss": ev["loss"], **{k: v for k, v in ev.items() if k != "loss"},
            "train_loss": row["loss"], "lr": row["lr"], "trained_tokens": state["trained_tokens"]})
    return ev


def _finish(run: _Run, raw: GPT, state: dict, clock: _Clock) -> dict:
    s = raw.sizes()
    save_safetensors(run.out / "model.safetensors", raw.export_state())
    run.tok.save(run.out)
    summary = {"run": run.name, "steps": run.cfg.max_steps, "tokens": state["tokens"],
               "trained_tokens": state["trained_tokens"], "params": s._asdict(), "first_loss": state.get("first_loss"),
               "flops_per_token": raw.flops_per_token(run.cfg.seq_len),
               "final_eval": state.get("last_eval", {}), "tokens_per_sec": clock.last_tps, "mfu": clock.last_mfu,
               "device": str(run.device), "world_size": run.world, "data": str(run.data)}
    write_json(run.out / SUMMARY, summary)
    return summary


class _Clock:
    """Throughput and MFU: tokens/s x training FLOPs/token over the device's peak."""

    def __init__(self, run: _Run, raw: GPT):
        self.run, self.fpt = run, raw.flops_per_token(run.cfg.seq_len)
        from lmlab.runs.mfu import peak_flops

        self.peak = peak_flops(run.device, run.cfg.dtype) * run.world
        self.t, self.last_tps, self.last_mfu = time.perf_counter(), 0.0, 0.0

    def row(self, done: int, m: dict, lr: float, state: dict) -> dict:
        now = time.perf_counter()
        tps = self.run.cfg.batch_size * self.run.cfg.seq_len / max(now - self.t, 1e-9)
        self.t, self.last_tps, self.last_mfu = now, tps, tps * self.fpt / self.peak
        return {"step": done, "loss": m["loss"], "lr": lr, "grad_norm": m["grad_norm"], "tokens": state["tokens"],
                "tokens_per_sec": tps, "mfu": self.last_mfu}


def load_run_model(run_dir: str | Path):
    """(GPT, Tokenizer) from a finished run directory (model.safetensors + config.json + tokenizer.json)."""
    from safetensors.torch import load_file

    from lmlab.data.tokenizer import Tokenizer

    run_dir = Path(run_dir)
    saved = read_json(run_dir / CONFIG)
    if not (run_dir / "model.safetensors").is_file():
        raise DataError(f"{run_dir} has no model.safetensors (unfinished run?)", "finish it with --resume first")
    model = GPT(from_dict(ModelConfig, saved["model"]))
    model.import_state(load_file(run_dir / "model.safetensors"))
    return model.eval(), Tokenizer.load(run_dir)

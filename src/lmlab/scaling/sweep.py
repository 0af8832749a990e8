"""`lmlab scaling sweep`: train a family of lmlab LMs (one run per size x tokens-per-param), one after another,
every run's held-out evals appended as rows to one OUT/runs.csv (intermediate checkpoints included).

Hyper-parameters scale with size (hand rules, stated so they can be checked):
  * peak LR  = lr_ref * sqrt(d_ref / d_model)  (AdamW LR ~ 1/sqrt(width), nanochat `base_train.py`)
  * warmup   = N_total tokens, clamped to [10 steps, 10% of steps]  (warmup scaled with model size, not a fixed
               3000 steps: Porian et al. 2024, §3.2)
  * tokens   = tokens_per_param * N (N_total by default, Pearce & Song 2024 / Chinchilla counting)
  * cosine schedule matched to each run's own horizon (Chinchilla App. B).
Resumable: a finished run (summary.json) is skipped, an interrupted one resumes from its checkpoint (the lm
trainer's exact resume). Under torchrun every run is data-parallel (the lm trainer's DDP); runs stay sequential.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from lmlab.config import check_literal
from lmlab.errors import ConfigError


@dataclass
class SweepConfig:
    sizes: list[str] = field(default_factory=lambda: ["16x1", "32x1", "32x2"])
    """Model shapes as WIDTHxLAYERS (d_model x n_layer), e.g. 64x2; heads = max(1, d_model // head_dim)."""
    tokens_per_param: list[float] = field(default_factory=lambda: [10.0])
    """Training tokens per parameter; every size is trained once per value."""
    param_count: Literal["total", "nonembed"] = "total"
    """Which N tokens_per_param multiplies: all parameters (Chinchilla) or non-embedding ones (Kaplan)."""
    data: str = "embedded"
    """Prepared dataset directory, or "embedded" (see `lmlab lm train --data`)."""
    head_dim: int = 16
    """Width of one attention head."""
    seq_len: int = 128
    """Tokens per sequence."""
    batch_size: int = 16
    """Sequences per step."""
    lr_ref: float = 4e-3
    """Peak LR at width d_ref."""
    d_ref: int = 32
    """Reference width of the LR rule."""
    min_steps: int = 20
    """Lower bound on steps per run (tiny token budgets)."""
    evals_per_run: int = 12
    """Held-out evaluations (runs.csv rows) per run, evenly spaced; the last one is the final loss."""
    eval_windows: int = 16
    """Sequences per domain in each evaluation."""
    dtype: Literal["fp32", "bf16"] = "fp32"
    """Training precision."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """Device (auto = cuda when available)."""
    seed: int = 0
    """Seed for every run."""

    def __post_init__(self):
        check_literal(self)
        for s in self.sizes:
            parse_size(s)
        if not self.tokens_per_param or min(self.tokens_per_param) <= 0:
            raise ConfigError("tokens_per_param must be positive numbers", "e.g. --tokens-per-param 10,20")
        if self.evals_per_run < 1:
            raise ConfigError("evals_per_run must be >= 1", "use e.g. 12")


def parse_size(spec: str) -> tuple[int, int]:
    """'64x2' -> (d_model 64, n_layer 2)."""
    try:
        d, n = (int(v) for v in spec.lower().split("x"))
    except ValueError:
        raise ConfigError(f"size '{spec}' is not WIDTHxLAYERS", "write sizes like 32x1,64x2") from None
    if d < 2 or n < 1 or d % 2:
        raise ConfigError(f"size '{spec}' needs an even width >= 2 and >= 1 layer", "e.g. 32x1")
    return d, n


def run_config(cfg: SweepConfig, size: str, tpp: float, runs_csv: Path, vocab_size: int):
    """The lm TrainConfig of one sweep point (the scaling rules of the module docstring)."""
    from lmlab.lm.model import GPT, ModelConfig
    from lmlab.lm.train import TrainConfig

    d, n_layer = parse_size(size)
    n_head = max(1, d // cfg.head_dim)
    while d % n_head or (d // n_head) % 2:
        n_head -= 1
    mc = ModelConfig(vocab_size=vocab_size, d_model=d, n_layer=n_layer, n_head=n_head, max_seq_len=cfg.seq_len)
    s = GPT(mc).sizes()
    n = s.n_total if cfg.param_count == "total" else s.n_nonembed
    step_tokens = cfg.batch_size * cfg.seq_len
    steps = max(cfg.min_steps, math.ceil(tpp * n / step_tokens))
    warmup = int(min(max(10, round(s.n_total / step_tokens)), max(1, steps // 10)))
    every = max(1, steps // cfg.evals_per_run)
    return TrainConfig(model=mc, data=cfg.data, seed=cfg.seed, batch_size=cfg.batch_size, seq_len=cfg.seq_len,
                       max_steps=steps, lr=cfg.lr_ref * math.sqrt(cfg.d_ref / d), warmup_steps=warmup,
                       schedule="cosine", beta2=0.99, eval_every=every, eval_windows=cfg.eval_windows,
                       log_every=every, ckpt_every=every, dtype=cfg.dtype, device=cfg.device,
                       runs_csv=str(runs_csv), name=run_name(size, tpp))


def run_name(size: str, tpp: float) -> str:
    return f"{size}_tpp{tpp:g}"


def plan(cfg: SweepConfig, out: Path) -> list:
    """(name, TrainConfig) of every run, in training order (cheapest first)."""
    from lmlab.io import read_json
    from lmlab.lm.train import resolve_data

    vocab = read_json(resolve_data(cfg.data) / "meta.json")["vocab_size"]
    runs = [run_config(cfg, s, t, out / "runs.csv", vocab) for s in cfg.sizes for t in cfg.tokens_per_param]
    return sorted(runs, key=lambda c: c.max_steps * c.model.d_model ** 2 * c.model.n_layer)


def sweep(cfg: SweepConfig, out: str | Path, progress: bool = True) -> dict:
    """Train every run of the plan into OUT/<name>/ (skipping finished ones, resuming interrupted ones)."""
    from lmlab import dist
    from lmlab.io import read_json, write_json
    from lmlab.lm.train import train
    from lmlab.runs import checkpoint
    from lmlab.runs.table import read_rows

    out = Path(out)
    saved = out / "sweep_config.json"
    if saved.is_file() and read_json(saved) != asdict(cfg):
        raise ConfigError(f"{out} holds a sweep with a different config", "use the same flags, or a new --out")
    if dist.is_main():
        write_json(saved, asdict(cfg))
    done = []
    for tc in plan(cfg, out):
        run = out / tc.name
        if not (run / "summary.json").is_file():
            if dist.is_main():
                print(f"sweep: training {tc.name} ({tc.max_steps} steps, lr {tc.lr:.2e})", flush=True)
            train(tc, run, resume=checkpoint.latest(run) is not None, progress=progress)
        done.append(tc.name)
    rows = read_rows(out / "runs.csv")
    result = {"out": str(out), "runs": done, "rows": len(rows), "runs_csv": str(out / "runs.csv")}
    if dist.is_main():
        write_json(out / "sweep_summary.json", result)
    return result


def describe_plan(cfg: SweepConfig, out: Path) -> list[dict]:
    """One dict per planned run (for --dry-run)."""
    return [{"name": c.name, "d_model": c.model.d_model, "n_layer": c.model.n_layer, "n_head": c.model.n_head,
             "steps": c.max_steps, "tokens": c.max_steps * c.batch_size * c.seq_len, "lr": c.lr,
             "warmup": c.warmup_steps} for c in plan(cfg, out)]


__all__ = ["SweepConfig", "describe_plan", "parse_size", "plan", "sweep"]

"""Train a TopK / BatchTopK SAE on an activation store (Gao et al. 2024 recipe; token_filtering_sae.md §4.2).

Data: the store's training rows (acts.store.split_rows: the held-out documents are never trained on), batches
a pure function of (seed, step) (acts.store.batch_rows), gathered one step ahead (acts.store.prefetch). Inputs
are scaled by s = sqrt(d) / E|x| from the store's statistics, so E|x_n|^2 ~ d whatever the model.
Loss: |x_n - x_n^|^2 / total variance of x_n (the store's, a constant: K torchrun ranks with equal slices
average to exactly the 1-process loss) + aux_coef * AuxK (dead latents reconstruct the detached residual,
normalised by the residual's mean square over the global batch). A latent is dead when it has not fired in
the last `dead_tokens` training tokens. Adam (Gao: betas 0.9/0.999, eps 6.25e-10), lr 2e-4 / sqrt(n / 2^14)
unless given, linear warmup, decoder-gradient projection before and row renormalisation after every step.
Exact resume: model, Adam state, the fired-step counters and RNG states are checkpointed (runs/checkpoint.py).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from lmlab import dist
from lmlab.acts.store import batch_rows, split_rows
from lmlab.config import check_literal, preset
from lmlab.errors import ConfigError, DataError, NonFiniteLoss
from lmlab.io import append_jsonl, save_safetensors, write_json
from lmlab.sae.model import SAEConfig, SparseAutoencoder, auxk_recon, geometric_median


@dataclass
class SAETrainConfig:
    store: str = ""
    """Activation store directory (lmlab acts harvest)."""
    expansion: float = 8.0
    """Latents as a multiple of the store's width d (n_latents = expansion * d) unless n_latents is given."""
    n_latents: int | None = None
    """Dictionary size (None: expansion * d)."""
    k: int = 32
    """Active latents per token."""
    variant: Literal["topk", "batchtopk"] = "topk"
    """TopK per token, or BatchTopK (learned threshold at inference)."""
    k_aux: int | None = None
    """AuxK dead latents per token (None: d // 2)."""
    aux_coef: float = 1 / 32
    """AuxK loss coefficient (Gao et al.)."""
    dead_tokens: int = 10_000_000
    """A latent that has not fired in this many training tokens is dead (Gao et al.: 10M)."""
    batch_size: int = 4096
    """Global activations per optimizer step."""
    max_steps: int = 2000
    """Optimizer steps."""
    lr: float | None = None
    """Adam learning rate (None: 2e-4 / sqrt(n_latents / 2^14), Gao et al.'s scaling)."""
    warmup_steps: int = 50
    """Linear warmup steps."""
    dtype: Literal["fp32", "bf16"] = "fp32"
    """bf16 autocast for the encoder matmul (parameters and Adam stay fp32), or fp32."""
    init_rows: int = 32768
    """Training rows whose geometric median initialises b_dec."""
    eval_rows: int = 8192
    """Held-out rows scored (FVU, L0) at log-spaced steps."""
    seed: int = 0
    """Seeds the init, the b_dec sample and the batches."""
    log_every: int = 10
    """Steps between metrics rows."""
    ckpt_every: int = 200
    """Steps between resume checkpoints."""
    runs_csv: str | None = None
    """runs.csv to append rows to (None: RUN/runs.csv)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = cuda when available."""
    log: list[str] = field(default_factory=list)
    """Experiment trackers beside metrics.jsonl: "tensorboard" (RUN/tb/) and/or "wandb" (offline unless WANDB_MODE
    says otherwise; RUN/wandb/). Needs pip install 'lmlab[tracking]'; a resume may change it."""

    def __post_init__(self):
        check_literal(self)
        if min(self.batch_size, self.max_steps, self.k) < 1 or self.expansion <= 0:
            raise ConfigError("batch_size, max_steps and k must be >= 1 and expansion > 0", "fix the config")

    def sae_config(self, d_in: int) -> SAEConfig:
        """The model's shape for a store of width d_in."""
        n = self.n_latents or int(round(self.expansion * d_in))
        return SAEConfig(d_in=d_in, n_latents=n, k=self.k, variant=self.variant, k_aux=self.k_aux,
                         aux_coef=self.aux_coef)

    def learning_rate(self, n_latents: int) -> float:
        return self.lr if self.lr is not None else 2e-4 / math.sqrt(n_latents / 2**14)


@preset("sae")
def tiny() -> SAETrainConfig:
    """Tests and the demo: about a minute on a 2-core CPU."""
    return SAETrainConfig(expansion=4, k=16, batch_size=1024, max_steps=300, dead_tokens=200_000, log_every=10,
                          ckpt_every=100, eval_rows=2048, init_rows=4096, warmup_steps=20)


@preset("sae", "smollm2-l15")
def smollm2_l15() -> SAETrainConfig:
    """SmolLM2-135M layer 15 (d 576): 8x = 4,608 latents, k 32, one pass over 8M activations."""
    return SAETrainConfig(expansion=8, k=32, batch_size=4096, max_steps=2000, dead_tokens=5_000_000)


class Trainable(torch.nn.Module):
    """What a checkpoint holds: the SAE and, per latent, the last step at which it fired."""

    def __init__(self, sae: SparseAutoencoder):
        super().__init__()
        self.sae = sae
        self.register_buffer("last_fired", torch.zeros(sae.cfg.n_latents, dtype=torch.long))

    def dead(self, step: int, batch_size: int, dead_tokens: int) -> torch.Tensor:
        """(n,) bool: no firing in the last dead_tokens training tokens."""
        return (step - self.last_fired) * batch_size >= dead_tokens

    def forward(self, xn: torch.Tensor, dead: torch.Tensor) -> dict[str, torch.Tensor]:
        """The SAE's training pass and, when latents are dead, the AuxK reconstruction — both inside one forward
        so that DDP (which wraps this module) sees every parameter use."""
        out = self.sae(xn)
        out["pre"] = out["pre"].float()
        if bool(dead.any()):
            out["aux_recon"] = auxk_recon(self.sae, out["pre"], dead)
        return out


def build_sae(cfg: SAETrainConfig, store, device) -> tuple[Trainable, torch.optim.Adam, float]:
    """SAE initialised from the store (input scale, geometric-median b_dec), its Adam, and the total variance
    of the scaled inputs (the loss normaliser)."""
    torch.manual_seed(cfg.seed)
    sae = SparseAutoencoder(cfg.sae_config(store.d_model))
    st = store.stats
    sae.scale.fill_(math.sqrt(store.d_model) / st["mean_norm"])
    train_rows, _ = split_rows(store)
    rng = np.random.default_rng([cfg.seed, 1])
    sample = np.sort(rng.choice(train_rows, size=min(cfg.init_rows, len(train_rows)), replace=False))
    x = store.get(sample)
    if not torch.isfinite(x).all():
        raise DataError("NaN/inf in the store's activations", "verify/re-harvest the store")
    with torch.no_grad():
        sae.b_dec.copy_(geometric_median(x * sae.scale))
    model = Trainable(sae).to(device)
    opt = torch.optim.Adam(model.sae.parameters(), lr=cfg.learning_rate(sae.cfg.n_latents), betas=(0.9, 0.999),
                           eps=6.25e-10)
    total_var = float(st["var"].sum()) * float(sae.scale) ** 2
    return model, opt, total_var


def load_batch(cfg: SAETrainConfig, store, train_rows, step: int, rank: int, world: int, device) -> torch.Tensor:
    """This rank's raw rows (B/world, d) of the global batch of `step`, on `device`."""
    x = store.get(batch_rows(train_rows, cfg.batch_size, cfg.seed, step, rank, world))
    if not torch.isfinite(x).all():
        raise DataError(f"NaN/inf in the activation batch of step {step + 1}", "verify/re-harvest the store")
    return x.to(device)


def train_step(cfg: SAETrainConfig, model: Trainable, opt, x: torch.Tensor, step: int, total_var: float,
               world: int = 1, wrapped=None) -> dict:
    """One optimizer step on raw rows x (b, d): loss, FVU, AuxK, L0 and the dead fraction before the step.
    `wrapped` is the DDP wrapper of `model` under torchrun (gradients averaged over ranks)."""
    sae = model.sae
    xn = x.float() * sae.scale
    dead = model.dead(step, cfg.batch_size, cfg.dead_tokens)
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=cfg.dtype == "bf16"):
        out = (wrapped or model)(xn, dead)
    mse = (xn - out["recon"]).pow(2).sum(1).mean() / total_var
    aux = _aux(xn, out, world)
    loss = mse + cfg.aux_coef * aux
    for g in opt.param_groups:
        g["lr"] = cfg.learning_rate(sae.cfg.n_latents) * min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    loss.backward()
    sae.project_decoder_grad()
    opt.step()
    opt.zero_grad(set_to_none=True)
    sae.normalise_decoder()
    fired = torch.zeros(sae.cfg.n_latents, dtype=torch.bool, device=x.device)
    fired[out["indices"][out["values"] > 0]] = True
    stats = torch.stack([loss.detach(), mse.detach(), aux.detach(), (out["values"] > 0).sum(1).float().mean()])
    if world > 1:
        f8 = fired.to(torch.uint8)
        torch.distributed.all_reduce(f8, op=torch.distributed.ReduceOp.MAX)
        fired = f8.bool()
        torch.distributed.all_reduce(stats)
        stats /= world
    model.last_fired[fired] = step + 1
    lv, fv, av, l0 = stats.tolist()
    if not math.isfinite(lv):
        raise NonFiniteLoss(f"non-finite SAE loss at step {step + 1}", "lower lr; resume from the checkpoint")
    return {"loss": lv, "fvu": fv, "auxk": av, "l0": l0, "dead_frac": float(dead.float().mean())}


def _aux(xn: torch.Tensor, out: dict, world: int) -> torch.Tensor:
    """AuxK loss normalised by the global batch's mean |residual|^2 (all-reduced, so K ranks = 1 process)."""
    if "aux_recon" not in out:
        return xn.new_zeros(())
    e = (xn - out["recon"]).detach()  # (b, d): the residual the dead latents try to explain
    denom = e.pow(2).sum(1).mean()  # Gao's normalised MSE: relative to |e|^2
    if world > 1:
        torch.distributed.all_reduce(denom)
        denom = denom / world
    return (e - out["aux_recon"]).pow(2).sum(1).mean() / denom.clamp_min(1e-12)


@torch.no_grad()
def heldout_metrics(sae: SparseAutoencoder, x: torch.Tensor) -> dict:
    """FVU (against the held-out rows' own variance), L0 and the share of latents that fired on raw rows x."""
    sae.eval()
    f = sae.encode(x)
    recon = sae.decode(f)
    sae.train()
    fvu = float((x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum())
    return {"fvu": fvu, "l0": float((f > 0).sum(1).float().mean()), "alive_frac": float((f > 0).any(0).float().mean())}


def train_sae(cfg: SAETrainConfig, out: str | Path, resume: bool = False, progress: bool = True) -> dict:
    """Train to cfg.max_steps: RUN/{config.json, metrics.jsonl, runs.csv, ckpt/, sae.safetensors, sae.json,
    summary.json}. torchrun-aware; exact resume with resume=True."""
    from lmlab import runs
    from lmlab.acts.store import open_for_training
    from lmlab.runs import checkpoint, checkpoint_steps, tracking
    from lmlab.runs.mfu import peak_flops

    out, owns = Path(out), not dist.is_distributed()
    device = dist.device(cfg.device)
    dist.init(device.type)
    rank, world = dist.rank(), dist.world_size()
    store, train_rows, held = open_for_training(cfg.store, cfg.batch_size, world)
    model, opt, total_var = build_sae(cfg, store, device)
    runs_csv = Path(cfg.runs_csv or out / runs.RUNS_CSV)
    tracking.check(cfg.log)  # a missing tracker package fails before anything is written
    start = runs.start_run(out, asdict(cfg), resume, runs_csv, runs.run_name(out), what="SAE run",
                           restore=(model, opt), defaults=asdict(SAETrainConfig()))
    dist.print0(model.sae.summary())
    wrapped = dist.ddp(model, device)
    rng = np.random.default_rng([cfg.seed, 2])
    x_held = store.get(np.sort(rng.choice(held, size=min(cfg.eval_rows, len(held)), replace=False))).to(device)
    # training FLOPs per token: the dense encoder forward (2 n d) and its weight gradient (2 n d); the sparse
    # decoder's 2 k d per pass is negligible at k << n
    with tracking.Tracker(out, cfg.log, asdict(cfg), start) as tracker:
        last = runs.train_loop(out, range(start, cfg.max_steps),
                               lambda s: load_batch(cfg, store, train_rows, s, rank, world, device),
                               lambda s, x: train_step(cfg, model, opt, x, s, total_var, world, wrapped),
                               batch_size=cfg.batch_size, flops_per_sample=4 * model.sae.cfg.n_latents * store.d_model,
                               peak=peak_flops(device, cfg.dtype) * world, log_every=cfg.log_every,
                               ckpt_every=cfg.ckpt_every, evals=set(checkpoint_steps(cfg.max_steps)),
                               on_eval=lambda done, m: _eval_row(cfg, out, runs_csv, model.sae, x_held, done, m),
                               save=lambda done: checkpoint.save(out, model, opt, {"step": done}), progress=progress,
                               label="sae", tracker=tracker)
    summary = _finish(cfg, out, model.sae, store, last) if dist.is_main() else {}
    dist.barrier()
    if owns:
        dist.cleanup()
    return summary


def _eval_row(cfg, out: Path, runs_csv: Path, sae: SparseAutoencoder, x_held, done: int, m: dict) -> dict:
    from lmlab import runs
    from lmlab.runs import table

    last = {"step": done, **heldout_metrics(sae, x_held), "dead_frac": m["dead_frac"]}
    append_jsonl(out / runs.METRICS, {"step": done, "eval": last})
    n = sum(p.numel() for p in sae.parameters())
    table.append_row(runs_csv, {"run": runs.run_name(out), "step": done, "N": n, "D": done * cfg.batch_size,
                                "C": 6 * n * done * cfg.batch_size, "loss": last["fvu"], "train_loss": m["fvu"],
                                "l0": last["l0"], "n_latents": sae.cfg.n_latents, "k": sae.cfg.k})
    return last


def _finish(cfg: SAETrainConfig, out: Path, sae: SparseAutoencoder, store, last: dict) -> dict:
    from lmlab.runs import SUMMARY

    save_sae(sae, out, store)
    summary = {"steps": cfg.max_steps, "activations": cfg.max_steps * cfg.batch_size, "final_eval": last,
               "store": cfg.store, "sae": asdict(sae.cfg)}
    write_json(out / SUMMARY, summary)
    return summary


def save_sae(sae: SparseAutoencoder, out: Path, store=None) -> None:
    """RUN/sae.safetensors (normalised-space weights + input scale + threshold) and RUN/sae.json (shape and
    the hook it reads: model, layer, the layer convention)."""
    save_safetensors(out / "sae.safetensors", {k: v for k, v in sae.state_dict().items()})
    hook = {"model": store.model, "layer": store.layer, "d_model": store.d_model} if store is not None else {}
    write_json(out / "sae.json", {"sae": asdict(sae.cfg), "hook": hook,
                                  "layer_convention": "output of decoder block `layer` (HF hidden_states[layer + 1])"})

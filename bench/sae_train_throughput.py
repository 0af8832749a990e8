"""SAE training throughput: lmlab's TopK SAE trainer step vs SAELens's, side by side in one process.

Both train a TopK SAE of the same shape (d_in, latents, k) on the SAME store rows in the same order (batches
from `acts.store.batch_rows`), one process, variants alternating round by round:

- **lmlab** — `lmlab.sae.train.train_step`: encoder matmul, TopK, decode from the k active decoder rows only
  (`embedding_bag`), AuxK, decoder-gradient projection, Adam, renormalised decoder; fp32.
- **lmlab-bf16** — the same with the encoder matmul under bf16 autocast (parameters and Adam fp32).
- **saelens** — sae-lens 6.54.12's `TopKTrainingSAE.training_forward_pass` (dense decode, AuxK), then the body of
  its `SAETrainer._train_step`: firing bookkeeping, backward, grad-norm clip 1.0, Adam, zero_grad; fp32.

Each variant then scores the same held-out rows (FVU), so speed is compared at the quality it reaches after the
same number of vectors. Writes JSON (with the load average before and after) to --out.

    python bench/sae_train_throughput.py --store STORE --out bench/results --steps 60 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True, help="Activation store (lmlab acts harvest).")
    p.add_argument("--out", default="bench/results")
    p.add_argument("--name", default="sae_train_throughput")
    p.add_argument("--latents", type=int, default=4608)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=20, help="Steps per variant per round.")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--eval-rows", type=int, default=8192)
    p.add_argument("--lr", type=float, default=None, help="Adam lr for all (default: lmlab's 2e-4/sqrt(n/2^14)).")
    return p.parse_args(argv)


def lmlab_variant(store, args, dtype: str):
    from lmlab.sae.train import SAETrainConfig, build_sae, train_step

    cfg = SAETrainConfig(store=str(store.path), n_latents=args.latents, k=args.k, batch_size=args.batch,
                         lr=args.lr, dtype=dtype, device="cpu")
    model, opt, total_var = build_sae(cfg, store, torch.device("cpu"))
    state = {"step": 0}

    def step(x):
        train_step(cfg, model, opt, x, state["step"], total_var)
        state["step"] += 1

    def fvu(x):
        from lmlab.sae.evaluate import activation_metrics

        return activation_metrics(model.sae.eval(), x)["fvu"]

    return step, fvu, cfg.learning_rate(args.latents)


def saelens_variant(store, args, lr: float):
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    torch.manual_seed(0)
    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=store.d_model, d_sae=args.latents, k=args.k))
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    coef = {k: (v.value if hasattr(v, "value") else v) for k, v in sae.get_coefficients().items()}
    since_fired = torch.zeros(args.latents)
    state = {"step": 0}

    def step(x):  # the body of SAETrainer._train_step (sae_lens/training/sae_trainer.py)
        sae.train()
        out = sae.training_forward_pass(TrainStepInput(sae_in=x, coefficients=coef, dead_neuron_mask=since_fired > 1000,
                                                       n_training_steps=state["step"], is_logging_step=False))
        with torch.no_grad():
            did_fire = out.feature_acts.bool().float().sum(-2).bool()
            since_fired.add_(1)
            since_fired[did_fire] = 0
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        state["step"] += 1

    @torch.no_grad()
    def fvu(x):
        sae.eval()
        r = sae.decode(sae.encode(x))
        return float((x - r).pow(2).sum() / (x - x.mean(0)).pow(2).sum())

    return step, fvu


def main(argv=None) -> int:
    from lmlab.acts.store import ActivationStore, batch_rows, split_rows

    args = parse_args(argv)
    load_start = os.getloadavg()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    store = ActivationStore.open(args.store)
    train_rows, held = split_rows(store)
    x_held = store.get(np.sort(np.random.default_rng(7).choice(held, min(args.eval_rows, len(held)), replace=False)))
    ours, fvu_ours, lr = lmlab_variant(store, args, "fp32")
    ours16, fvu_ours16, _ = lmlab_variant(store, args, "bf16")
    theirs, fvu_theirs = saelens_variant(store, args, lr)
    variants = {"lmlab": ours, "lmlab-bf16": ours16, "saelens": theirs}
    secs: dict[str, list[float]] = {k: [] for k in variants}
    step = 0
    batches = lambda s: store.get(batch_rows(train_rows, args.batch, 0, s))
    for fn in variants.values():  # warm-up: one step each on the first batch
        fn(batches(0))
    for _ in range(args.rounds):
        xs = [batches(step + 1 + i) for i in range(args.steps)]  # gathered before timing: the same rows for all
        for name, fn in variants.items():
            t = time.perf_counter()
            for x in xs:
                fn(x)
            secs[name].append(time.perf_counter() - t)
        step += args.steps
    rate = {k: [args.steps * args.batch / s for s in v] for k, v in secs.items()}
    med = {k: statistics.median(v) for k, v in rate.items()}
    fvu = {"lmlab": fvu_ours(x_held), "lmlab-bf16": fvu_ours16(x_held), "saelens": fvu_theirs(x_held)}
    record = {"command": " ".join(["python", *sys.argv]), "args": vars(args), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "store": {"model": store.model, "layer": store.layer, "d_model": store.d_model, "rows": len(store)},
              "vectors_trained_each": (1 + args.rounds * args.steps) * args.batch,
              "vectors_per_sec": rate, "median": med, "ratio": med["lmlab"] / med["saelens"],
              "ratio_bf16": med["lmlab-bf16"] / med["saelens"], "heldout_fvu": fvu, "lr": lr,
              "loadavg_1_5_15_at_start": load_start, "loadavg_1_5_15_at_end": os.getloadavg()}
    from lmlab.io import write_json

    write_json(Path(args.out) / f"{args.name}.json", record)
    print(f"SAE {args.latents} latents k {args.k}, batch {args.batch}: "
          + ", ".join(f"{k} {v:,.0f} vectors/s (FVU {fvu[k]:.3f})" for k, v in med.items())
          + f"; ratio {record['ratio']:.2f}x (bf16 {record['ratio_bf16']:.2f}x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

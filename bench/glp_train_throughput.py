"""GLP training samples/s: lmlab's trainer step vs the paper's recipe as published, same network size, batch
and data, in one process.

  lmlab  `lmlab.glp.train`'s loop: `load_batch` (rows gathered from the memory-mapped store by index, step-pure
         batches) run one step ahead by `prefetch` in a background thread (pinned host->device copies on CUDA),
         z-scored in the wrapper, sigma levels of a batch drawn from one coset of the paper's grid
         (`sigma_strata`, same marginal) so the time path (computed once per distinct sigma) is cheap, bf16
         autocast, fused AdamW, clip 1. `lmlab-iid` is the same with iid sigma (sigma_strata=1).
  paper  the official recipe: a torch DataLoader (num_workers=0, shuffle) over the same memory-mapped rows
         with normalisation in the collate function, the denoiser computing its time path for every row
         (`dedup_time=False`, as `glp/denoiser.py` does), fp32 master weights + bf16 autocast, uniform sigma,
         AdamW (default foreach), clip 1, no compile.
Same initial weights, same batch size; the variants are timed alternately for --repeats rounds of --steps steps.
Data: a synthetic store of --rows activations of width --d-in written to a temp dir, so the script needs no
harvest; what is timed does not depend on the values. On CUDA, MFU = samples/s * 6 N / 989e12 (bf16 dense
peak of H100/H200, `lmlab.runs.mfu.peak_flops`).

Run: python bench/glp_train_throughput.py --out bench/results
     python bench/glp_train_throughput.py --device cuda --preset paper-llama1b-d3 --batch 4096 --out DIR
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lmlab.io import write_json


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=4)
    p.add_argument("--preset", default="smollm2-d3", help="GLP preset giving the widths (paper-llama1b-d3: d_in 2048)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--name", default="glp_train_throughput", help="output file stem")
    return p.parse_args(argv)


def make_store(path: Path, rows: int, d: int = 576):
    from lmlab.acts.store import StoreWriter, merge_store

    g = torch.Generator().manual_seed(0)
    w = StoreWriter(path, {"model": "synthetic", "layer": 0, "d_model": d, "dtype": "bfloat16", "domains": ["a"],
                           "config": {}}, shard_size=65536)
    for i in range(0, rows, 10_000):
        n = min(10_000, rows - i)
        w.add(torch.randn(n, d, generator=g) * 3 + 1, np.arange(i, i + n) // 50, np.arange(n) % 50, 0, 0)
        w.commit({"i": i})
    w.close({"done": True})
    merge_store(path)


class Rows(torch.utils.data.Dataset):
    def __init__(self, store, rows):
        self.store, self.rows = store, rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.store.get(self.rows[i:i + 1])[0]


def paper_loop(store, train_rows, glp, opt, batch: int, device):
    """An endless iterator of paper-recipe steps (DataLoader + collate normalisation + per-row time path)."""
    from lmlab.glp.flow import fm_loss, sample_sigma

    mean, std = glp.normalizer.mean.cpu(), glp.normalizer.std.cpu()
    dl = torch.utils.data.DataLoader(Rows(store, train_rows), batch_size=batch, shuffle=True, num_workers=0,
                                     drop_last=True, collate_fn=lambda xs: (torch.stack(xs) - mean) / std)
    while True:
        for x in dl:
            x = x.to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss = fm_loss(glp.net, x, sample_sigma(len(x), device=device), torch.randn_like(x))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(glp.net.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            yield loss.item()


def lmlab_loop(cfg, store, train_rows, glp, opt, device):
    """An endless iterator of lmlab trainer steps, data prefetched one step ahead as in `train_glp`."""
    from lmlab.glp import train as T
    from lmlab.runs import prefetch

    batches = prefetch(lambda s: T.load_batch(cfg, store, train_rows, s, 0, 1, device), range(10**9))
    for step, batch in enumerate(batches):
        yield T.train_step(cfg, glp, glp, opt, batch, step, 1)


def main(argv=None) -> int:
    from lmlab.acts.store import ActivationStore, split_rows
    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp import train as T
    from lmlab.runs.mfu import peak_flops

    args = parse_args(argv)
    load_start = os.getloadavg()  # > threads means other processes shared the cores: not a result
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        d_in = 2048 if args.preset.startswith("paper-llama1b") else 576  # presets take d from the store
        make_store(Path(tmp) / "s", args.rows, d_in)
        store = ActivationStore.open(Path(tmp) / "s")
        over = [f'store="{Path(tmp) / "s"}"', f"net.n_layers={args.depth}", f"batch_size={args.batch}",
                f"device={args.device}", "sigma_strata=8"]
        cfg = apply_overrides(get_preset("glp", args.preset), over)
        iid = apply_overrides(get_preset("glp", args.preset), over + ["sigma_strata=1"])
        train_rows, _ = split_rows(store)
        models = {k: T.build_glp(cfg, store, device) for k in ("lmlab", "lmlab-iid", "paper")}  # same seed, same init
        paper, opt_paper = models["paper"]
        paper.net.dedup_time = False
        opt_paper = torch.optim.AdamW(paper.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)  # default
        loops = {"lmlab": lmlab_loop(cfg, store, train_rows, *models["lmlab"], device),
                 "lmlab-iid": lmlab_loop(iid, store, train_rows, *models["lmlab-iid"], device),
                 "paper": paper_loop(store, train_rows, paper, opt_paper, args.batch, device)}
        for loop in loops.values():  # warm-up
            next(loop), next(loop)
        secs = {k: [] for k in loops}
        for _ in range(args.repeats):
            for k, loop in loops.items():
                sync()
                t = time.perf_counter()
                for _ in range(args.steps):
                    next(loop)
                sync()
                secs[k].append(time.perf_counter() - t)
    rate = {k: [args.steps * args.batch / s for s in v] for k, v in secs.items()}
    med = {k: statistics.median(v) for k, v in rate.items()}
    params = sum(p.numel() for p in paper.net.parameters())
    peak = peak_flops(device, "bf16")
    record = {"command": " ".join(["python", *sys.argv]), "args": vars(args), "params": params,
              "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "loadavg_1_5_15_at_start": load_start,
              "loadavg_1_5_15_at_end": os.getloadavg(), "samples_per_sec": rate,
              "median": med, "ratio": med["lmlab"] / med["paper"], "ratio_iid": med["lmlab-iid"] / med["paper"],
              "mfu": {k: v * 6 * params / peak for k, v in med.items()} if device.type == "cuda" else None}
    write_json(Path(args.out) / f"{args.name}.json", record)
    print(f"GLP d{args.depth} ({params / 1e6:.1f}M params), batch {args.batch}, {record['device']}: "
          + ", ".join(f"{k} {v:,.0f} samples/s" for k, v in med.items())
          + f"; ratio {record['ratio']:.2f}x (iid sigma {record['ratio_iid']:.2f}x)"
          + (f"; MFU lmlab {record['mfu']['lmlab']:.1%}, paper {record['mfu']['paper']:.1%}" if record["mfu"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

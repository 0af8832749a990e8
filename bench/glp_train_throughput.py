"""GLP training samples/s: lmlab's trainer step vs the paper's recipe as published, same network size, batch
and data, in one process.

  lmlab  `lmlab.glp.train._step`: rows gathered from the memory-mapped store by index (step-pure batches),
         z-scored in the wrapper, the time path computed once per distinct sigma, bf16 autocast, AdamW, clip 1.
  paper  the official recipe: a torch DataLoader (num_workers=0, shuffle) over the same memory-mapped rows
         with normalisation in the collate function, the denoiser computing its time path for every row
         (`dedup_time=False`, as `glp/denoiser.py` does), fp32 master weights + bf16 autocast, uniform sigma,
         AdamW, clip 1, no compile.
Same initial weights, same batch size; the two are timed alternately for --repeats rounds of --steps steps.
Data: a synthetic store of --rows activations of width 576 (SmolLM2's) written to a temp dir, so the script
needs no harvest; what is timed does not depend on the values.

Run: python bench/glp_train_throughput.py --out bench/results
"""

from __future__ import annotations

import argparse
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


def paper_loop(store, train_rows, glp, opt, batch: int):
    """An endless iterator of paper-recipe steps (DataLoader + collate normalisation + per-row time path)."""
    from lmlab.glp.flow import fm_loss, sample_sigma

    mean, std = glp.normalizer.mean, glp.normalizer.std
    dl = torch.utils.data.DataLoader(Rows(store, train_rows), batch_size=batch, shuffle=True, num_workers=0,
                                     drop_last=True, collate_fn=lambda xs: (torch.stack(xs) - mean) / std)
    while True:
        for x in dl:
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = fm_loss(glp.net, x, sample_sigma(len(x)), torch.randn_like(x))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(glp.net.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            yield loss.item()


def main(argv=None) -> int:
    from lmlab.acts.store import ActivationStore
    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp import train as T

    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        make_store(Path(tmp) / "s", args.rows)
        store = ActivationStore.open(Path(tmp) / "s")
        cfg = apply_overrides(get_preset("glp", "smollm2-d3"), [f'store="{Path(tmp) / "s"}"',
                              f"net.n_layers={args.depth}", f"batch_size={args.batch}"])
        train_rows, _ = T.split_rows(store)
        ours, opt_ours = T._build(cfg, store, torch.device("cpu"))
        paper, opt_paper = T._build(cfg, store, torch.device("cpu"))  # same seed: identical initial weights
        paper.net.dedup_time = False
        loop = paper_loop(store, train_rows, paper, opt_paper, args.batch)
        step = iter(range(10**9))
        run = {"lmlab": lambda: T._step(cfg, ours, ours, opt_ours, store, train_rows, next(step), 0, 1,
                                        torch.device("cpu")),
               "paper": lambda: next(loop)}
        for f in run.values():  # warm-up
            f()
        secs = {k: [] for k in run}
        for _ in range(args.repeats):
            for k, f in run.items():
                t = time.perf_counter()
                for _ in range(args.steps):
                    f()
                secs[k].append(time.perf_counter() - t)
    rate = {k: [args.steps * args.batch / s for s in v] for k, v in secs.items()}
    med = {k: statistics.median(v) for k, v in rate.items()}
    params = sum(p.numel() for p in ours.net.parameters())
    record = {"command": " ".join(["python", *sys.argv]), "args": vars(args), "params": params,
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "samples_per_sec": rate,
              "median": med, "ratio": med["lmlab"] / med["paper"]}
    write_json(Path(args.out) / "glp_train_throughput.json", record)
    print(f"GLP d{args.depth} ({params / 1e6:.1f}M params), batch {args.batch}: lmlab {med['lmlab']:,.0f} samples/s, "
          f"paper recipe {med['paper']:,.0f} samples/s, ratio {record['ratio']:.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

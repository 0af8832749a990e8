"""Compute dtype on this CPU: the explicit bf16 that lmlab's harvester and GLP trainer defaulted to before, vs
`dtype=auto` (bf16 only where the hardware computes it natively: a CUDA GPU with bf16, a CPU with AVX512-BF16
or AMX; fp32 elsewhere — lmlab.dist.native_bf16).

On a CPU without native bf16, torch emulates bf16 matmuls through fp32 conversions and they run slower than
fp32 itself; on one with AMX they run faster. So the right default depends on the machine, and this script
measures both on the machine it runs on, in one process, alternating:
  harvest   `lmlab.acts.harvest` of --tokens tokens of the embedded corpus (SmolLM2-135M, layer 15, seq 512,
            16 rows per forward, packed), model load included, into a fresh store each time: tokens/s.
  glp       `lmlab.glp.train.train_glp` with the smollm2-d3 preset (35.9M params) on that store for
            --glp-steps steps of --glp-batch activations: activations/s (steps after the first; the first
            includes start-up and is left out).
  lm        `lmlab.lm.train.train` with the `demo` preset (the demo's LM) for --lm-steps steps on a small
            prepared dataset: tokens/s (from its metrics.jsonl, first logged window left out).
Each (stage, dtype) pair is timed --repeats times, alternating dtypes; the JSON keeps every sample, the medians,
their ratio (auto / bf16), what "auto" resolved to, the CPU flags torch sees, and the load average.

Run: python bench/dtype_speed.py --out bench/results
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for dtype_speed.json")
    p.add_argument("--tokens", type=int, default=4000, help="harvest: tokens per timed harvest")
    p.add_argument("--glp-steps", type=int, default=4)
    p.add_argument("--glp-batch", type=int, default=256)
    p.add_argument("--lm-steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--stages", default="harvest,glp,lm")
    return p.parse_args(argv)


def time_harvest(dtype: str, tokens: int, where: Path) -> float:
    from lmlab.acts.harvester import HarvestConfig, harvest

    out = Path(tempfile.mkdtemp(dir=where))
    t0 = time.perf_counter()
    m = harvest(HarvestConfig(model="smollm2", layer=15, tokens=tokens, out=str(out), seq_len=512, batch=16,
                              dtype=dtype, device="cpu"), progress=False)
    return m["count"] / (time.perf_counter() - t0)


def time_glp(dtype: str, store: Path, steps: int, batch: int, where: Path) -> float:
    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp.train import train_glp
    from lmlab.io import read_jsonl

    out = Path(tempfile.mkdtemp(dir=where))
    cfg = apply_overrides(get_preset("glp", "smollm2-d3"), [
        f"store={json.dumps(str(store))}", f"max_steps={steps}", f"batch_size={batch}", f"dtype={json.dumps(dtype)}",
        "log_every=1", f"ckpt_every={10 * steps}", "eval_rows=64", 'device="cpu"'])
    train_glp(cfg, out, progress=False)
    rates = [r["tokens_per_sec"] for r in read_jsonl(out / "metrics.jsonl") if "loss" in r][1:]
    return statistics.median(rates)


def time_lm(dtype: str, data: Path, steps: int, where: Path) -> float:
    from lmlab.config import apply_overrides, get_preset
    from lmlab.io import read_jsonl
    from lmlab.lm.train import train

    out = Path(tempfile.mkdtemp(dir=where))
    cfg = apply_overrides(get_preset("lm", "demo"), [
        f"data={json.dumps(str(data))}", f"max_steps={steps}", f"dtype={json.dumps(dtype)}", "log_every=5",
        f"eval_every={10 * steps}", f"ckpt_every={10 * steps}", 'device="cpu"'])
    train(cfg, out, progress=False)
    rates = [r["tokens_per_sec"] for r in read_jsonl(out / "metrics.jsonl") if "tokens_per_sec" in r][1:]
    return statistics.median(rates)


def prepare(where: Path, stages: set[str]) -> tuple[Path | None, Path | None]:
    """A 20k-row fp32-computed store for the GLP rows and a small prepared dataset for the LM rows."""
    from lmlab.acts.harvester import HarvestConfig, harvest

    store = data = None
    if "glp" in stages:
        store = where / "store"
        harvest(HarvestConfig(model="smollm2", layer=15, tokens=20_000, out=str(store), seq_len=512, dtype="fp32",
                              store_dtype="bf16", device="cpu"), progress=False)
    if "lm" in stages:
        from lmlab.data.prepare import DataConfig, prepare_dataset

        data = where / "data"
        prepare_dataset(DataConfig(vocab_size=8192, tokenizer_train_chars=2_000_000, max_train_tokens=300_000,
                                max_val_tokens=20_000), data, progress=False)
    return store, data


def main(argv=None) -> None:
    import torch

    from lmlab import dist
    from lmlab.io import write_json

    args = parse_args(argv)
    stages = set(args.stages.split(","))
    load0 = os.getloadavg()  # > 2 on a 2-core machine: something else shared the cores, not a result
    res: dict = {"resolved_auto": dist.compute_dtype("auto", torch.device("cpu")),
                 "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                 "avx512_bf16": bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)()),
                 "amx": bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()), "stages": {}}
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        store, data = prepare(where, stages)
        timers = {"harvest": lambda d: time_harvest(d, args.tokens, where),
                  "glp": lambda d: time_glp(d, store, args.glp_steps, args.glp_batch, where),
                  "lm": lambda d: time_lm(d, data, args.lm_steps, where)}
        for stage in [s for s in ("harvest", "glp", "lm") if s in stages]:
            samples = {"bf16": [], "auto": []}
            for _ in range(args.repeats):
                for d in ("bf16", "auto"):
                    samples[d].append(timers[stage](d))
                    print(f"{stage} {d}: {samples[d][-1]:,.0f}/s", file=sys.stderr)
            med = {d: statistics.median(v) for d, v in samples.items()}
            res["stages"][stage] = {"per_sec": samples, "median": med, "ratio_auto_over_bf16": med["auto"] / med["bf16"]}
    res.update({"args": vars(args), "cpus": os.cpu_count(), "threads": torch.get_num_threads(),
                "torch": torch.__version__, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "loadavg_1_5_15_at_start": load0, "loadavg_1_5_15_at_end": os.getloadavg(),
                "command": "python bench/dtype_speed.py " + " ".join(sys.argv[1:])})
    write_json(Path(args.out) / "dtype_speed.json", res)
    for stage, r in res["stages"].items():
        print(f"{stage}: bf16 {r['median']['bf16']:,.0f}/s, auto ({res['resolved_auto']}) "
              f"{r['median']['auto']:,.0f}/s: {r['ratio_auto_over_bf16']:.2f}x")


if __name__ == "__main__":
    main()

"""Training throughput: lmlab GPT vs HF LlamaForCausalLM, same config, same weights, same batch.

What is compared (one optimizer step = forward + backward + AdamW step + zero_grad, no grad clipping):
  lmlab  `lmlab.lm.model.GPT`, loss `model(x, y)` under autocast, as in `lmlab.lm.train.train_step`: the
         fused LM head + cross-entropy (`LinearCrossEntropy`, same value and gradients as
         `lm_loss(model(x), y)`; checked below on the fused path too), optimizer `lmlab.lm.train.build_optimizer` (AdamW, weight decay on
         dim >= 2 parameters only).
  HF     `transformers.LlamaForCausalLM` built by `lmlab.lm.hf.to_hf_model(gpt)` (identical config, a copy of
         the same weights), loss through its normal training path `model(input_ids=x, labels=y,
         shift_labels=y, use_cache=False).loss` (shift_labels: the targets are already shifted, exactly as
         the HF Trainer passes them; so both models average the same B*T next-token losses), optimizer a
         plain `torch.optim.AdamW` with the same param groups, hyper-parameters and foreach/fused flags.
Both run in one process on the same input ids and targets. Before timing, each pair must give the same fp32
loss on the first batch (|delta| < 1e-4, and max |logit delta| < 1e-4: at init the loss is ~ln(vocab) for
any model, so the loss alone is a weak test), else the script stops: timing two different computations is
meaningless. Each model is warmed up, then the two are timed interleaved (lmlab, HF, lmlab, HF, ...) over
`--repeats` rounds of `--steps` steps; we report median/min/max tokens/s per model and the ratio of the
medians (lmlab / HF). On CUDA also MFU = tokens/s * GPT.flops_per_token(seq) / bf16 dense peak (989e12 on
H100/H200, `lmlab.runs.mfu.peak_flops`).

Run: python bench/train_throughput.py --out bench/results      (see bench/README.md)
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from lmlab.io import write_json
from lmlab.lm.hf import to_hf_model
from lmlab.lm.model import GPT, ModelConfig, lm_loss
from lmlab.lm.train import TrainConfig, build_optimizer
from lmlab.runs.mfu import peak_flops

# name -> (model kwargs, seq_len, batch_size)
CONFIGS = {
    "d256-L4": (dict(d_model=256, n_layer=4, n_head=4, vocab_size=8192), 256, 16),
    "d512-L8": (dict(d_model=512, n_layer=8, n_head=8, vocab_size=8192), 256, 8),
    "d768-L12": (dict(d_model=768, n_layer=12, n_head=12, vocab_size=8192), 1024, 16),  # ~91M params
    "d256-L4-V49k": (dict(d_model=256, n_layer=4, n_head=4, vocab_size=49152), 256, 8),  # SmolLM2's vocab
}
DEFAULT_CONFIGS = {"cpu": "d256-L4,d512-L8,d256-L4-V49k", "cuda": "d256-L4,d512-L8,d768-L12"}
LOSS_TOL = 1e-4
DTYPES = ("fp32", "bf16")
OPTIM_KEYS = ("lr", "betas", "eps", "amsgrad", "maximize", "foreach", "capturable", "differentiable", "fused")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory; writes DIR/train_throughput.json")
    p.add_argument("--configs", default=None, help=f"comma list of {', '.join(CONFIGS)} "
                   f"(default: {DEFAULT_CONFIGS['cpu']} on cpu, {DEFAULT_CONFIGS['cuda']} on cuda)")
    p.add_argument("--dtypes", default="fp32,bf16", help="comma list: fp32, bf16 (autocast)")
    p.add_argument("--steps", type=int, help="timed optimizer steps per model per repeat (cpu 2, cuda 20)")
    p.add_argument("--warmup", type=int, help="untimed steps per model before timing, >= 1 (cpu 2, cuda 5)")
    p.add_argument("--repeats", type=int, default=10, help="interleaved rounds: lmlab, HF, lmlab, ...")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch.set_num_threads")
    p.add_argument("--compile", action="store_true", help="also time both models under torch.compile")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    args.steps = args.steps or (20 if args.device == "cuda" else 2)
    args.warmup = args.warmup or (5 if args.device == "cuda" else 2)
    args.configs = (args.configs or DEFAULT_CONFIGS[args.device]).split(",")
    args.dtypes = args.dtypes.split(",")
    unknown = [c for c in args.configs if c not in CONFIGS] + [d for d in args.dtypes if d not in DTYPES]
    if unknown:
        p.error(f"unknown config/dtype: {', '.join(unknown)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda but torch.cuda.is_available() is False")
    return args


def environment(args: argparse.Namespace) -> dict:
    """Everything needed to interpret (and reproduce) the numbers."""
    import transformers

    info = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        key, _, val = line.partition(":")
        info.setdefault(key.strip(), val.strip())
    env = {"command": shlex.join(["python"] + sys.argv), "python_executable": Path(sys.executable).name,
           "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
           "torch": torch.__version__, "transformers": transformers.__version__,
           "python": platform.python_version(), "device": args.device,
           "cpu_model": info.get("model name", platform.processor()), "cpu_count": os.cpu_count(),
           "cpu_bf16_flags": [f for f in info.get("flags", "").split() if "bf16" in f or f.startswith("amx")],
           "torch_num_threads": torch.get_num_threads(),
           "torch_num_interop_threads": torch.get_num_interop_threads(),
           "float32_matmul_precision": torch.get_float32_matmul_precision(),
           "loadavg_1_5_15_at_start": os.getloadavg(),
           "steps": args.steps, "warmup": args.warmup, "repeats": args.repeats, "seed": args.seed}
    env.update(code_version())
    if args.device == "cuda":
        env["gpu"] = torch.cuda.get_device_name(0)
        env["peak_flops_bf16"] = peak_flops(torch.device("cuda", 0), "bf16")
    return env


def code_version() -> dict:
    """Git commit, files changed since it, and a hash of model.py as imported (it may be in flux)."""
    import hashlib
    import subprocess

    import lmlab.lm.model as m

    def git(*cmd: str) -> str | None:
        r = subprocess.run(["git", *cmd], cwd=Path(m.__file__).parent, capture_output=True, text=True)
        return r.stdout.strip() if r.returncode == 0 else None

    changed = (git("status", "--porcelain") or "").splitlines()
    return {"git_commit": git("rev-parse", "HEAD"), "git_changed": changed,
            "model_py_sha256": hashlib.sha256(Path(m.__file__).read_bytes()).hexdigest()[:16]}


def build_pair(name: str, args: argparse.Namespace):
    """(gpt, hf, opt_gpt, opt_hf, x, y, train_cfg): fresh identical models and optimizers, one fixed batch."""
    kw, seq, batch = CONFIGS[name]
    dev = torch.device(args.device)
    tcfg = TrainConfig(model=ModelConfig(max_seq_len=seq, **kw), seq_len=seq, batch_size=batch)
    torch.manual_seed(args.seed)
    gpt = GPT(tcfg.model)
    hf = to_hf_model(gpt)  # a copy of gpt's weights in a LlamaForCausalLM
    gpt, hf = gpt.to(dev).train(), hf.to(dev).train()
    opt_gpt = build_optimizer(tcfg, gpt)
    opt_hf = hf_optimizer(hf, opt_gpt)
    g = torch.Generator().manual_seed(args.seed + 1)
    seqs = torch.randint(0, kw["vocab_size"], (batch, seq + 1), generator=g)
    x, y = seqs[:, :-1].contiguous().to(dev), seqs[:, 1:].contiguous().to(dev)
    return gpt, hf, opt_gpt, opt_hf, x, y, tcfg


def hf_optimizer(hf: torch.nn.Module, ref: torch.optim.AdamW) -> torch.optim.AdamW:
    """Plain AdamW for HF: build_optimizer's grouping (decay dim >= 2 only) and ref's exact settings,
    implementation flags (foreach / fused) included, so that the AdamW step is implemented alike for both."""
    params = [p for p in hf.parameters() if p.requires_grad]
    g0, g1 = ref.param_groups
    groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": g0["weight_decay"]},
              {"params": [p for p in params if p.dim() < 2], "weight_decay": g1["weight_decay"]}]
    kw = {k: ref.defaults[k] for k in OPTIM_KEYS if k in ref.defaults}
    opt = torch.optim.AdamW(groups, **kw)
    sizes = [[sum(p.numel() for p in g["params"]) for g in o.param_groups] for o in (ref, opt)]
    if sizes[0] != sizes[1]:  # tensor counts may differ (fused projections), element counts may not
        raise RuntimeError(f"param groups differ (elements per group): lmlab {sizes[0]} vs HF {sizes[1]}")
    return opt


def optim_settings(opt: torch.optim.Optimizer) -> dict:
    """Implementation flags and per-group (weight_decay, #tensors, #elements), for the record."""
    return {**{k: opt.defaults.get(k) for k in OPTIM_KEYS}, "groups": [
        {"weight_decay": g["weight_decay"], "tensors": len(g["params"]),
         "numel": sum(p.numel() for p in g["params"])} for g in opt.param_groups]}


def autocast(dtype: str, device: str):
    if dtype == "bf16":
        return torch.autocast(device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def loss_gpt(model, x, y, dtype: str, device: str) -> torch.Tensor:
    """lmlab's training path (lmlab.lm.train.train_step): model(x, y) under autocast — the fused LM head +
    cross-entropy (lmlab.lm.model.LinearCrossEntropy), equal in value and gradients to lm_loss(model(x), y)."""
    with autocast(dtype, device):
        return model(x, y)


def loss_hf(model, x, y, dtype: str, device: str) -> torch.Tensor:
    """HF's training path: the loss computed inside forward from labels (pre-shifted: shift_labels)."""
    with autocast(dtype, device):
        return model(input_ids=x, labels=y, shift_labels=y, use_cache=False).loss


def check_same_function(gpt, hf, x, y) -> dict:
    """fp32 loss (and logits) of both models on the first batch, before any step; stop if they differ.

    At init the loss is close to ln(vocab) for any small-logit model, so the logits are compared as well."""
    with torch.no_grad():
        logits = gpt(x)
        out = hf(input_ids=x, labels=y, shift_labels=y, use_cache=False)
        a, b = gpt(x, y).item(), out.loss.item()  # lmlab's fused training loss vs HF's
        dl = (logits.float() - out.logits.float()).abs().max().item()
    check = {"loss_lmlab_fused": a, "loss_lmlab_logits": lm_loss(logits, y).item(), "loss_hf": b, "abs_delta": abs(a - b), "max_abs_logit_delta": dl,
             "tol": LOSS_TOL}
    if not (abs(a - b) < LOSS_TOL and dl < LOSS_TOL):
        raise SystemExit(f"mismatch before timing: loss lmlab {a:.6f} vs HF {b:.6f}, max |logit delta| "
                         f"{dl:.2e} (tolerance {LOSS_TOL}): the models differ; not timing them")
    return {**check, "ok": True}


def make_step(model, opt, loss_fn, x, y, dtype: str, device: str):
    """One training step as a closure returning the (detached) loss."""
    def step():
        loss = loss_fn(model, x, y, dtype, device)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()
    return step


def timed(step, n: int, device: str) -> float:
    """Seconds for n steps (device-synchronised); the last loss must be finite."""
    if device == "cuda":
        torch.cuda.synchronize()
    t, loss = time.perf_counter(), torch.zeros(())
    for _ in range(n):
        loss = step()
    if device == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t
    if not torch.isfinite(loss).item():
        raise RuntimeError(f"non-finite loss {loss.item()} while timing")
    return dt


def stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs), "all": xs}


def bench_row(name: str, dtype: str, variant: str, args: argparse.Namespace) -> dict:
    """One (config, dtype, eager|compile) row: verify equal losses, warm up, time interleaved."""
    gpt, hf, opt_gpt, opt_hf, x, y, tcfg = build_pair(name, args)
    check = check_same_function(gpt, hf, x, y)
    fpt = gpt.flops_per_token(tcfg.seq_len)
    row = {"config": name, "dtype": dtype, "variant": variant, "seq_len": tcfg.seq_len,
           "batch_size": tcfg.batch_size, "model": asdict(tcfg.model), "params": gpt.sizes()._asdict(),
           "hf_params": sum(p.numel() for p in hf.parameters()), "hf_attn_implementation":
           hf.config._attn_implementation, "flops_per_token": fpt, "loss_check_fp32": check,
           "optimizer": {"lmlab": optim_settings(opt_gpt), "hf": optim_settings(opt_hf)}}
    if variant == "compile":
        torch._dynamo.reset()  # fresh compile caches per row (no recompile limit across configs)
        gpt, hf = torch.compile(gpt), torch.compile(hf)
    steps = {"lmlab": make_step(gpt, opt_gpt, loss_gpt, x, y, dtype, args.device),
             "hf": make_step(hf, opt_hf, loss_hf, x, y, dtype, args.device)}
    row["first_step_loss"] = {k: s().item() for k, s in steps.items()}  # same weights: dtype-level agreement
    for s in steps.values():
        timed(s, max(args.warmup - 1, 0), args.device)
    tokens = args.steps * tcfg.batch_size * tcfg.seq_len
    tps = {"lmlab": [], "hf": []}
    for _ in range(args.repeats):  # interleaved A/B/A/B: slow drift hits both models alike
        for k, s in steps.items():
            tps[k].append(tokens / timed(s, args.steps, args.device))
    row["tokens_per_sec"] = {k: stats(v) for k, v in tps.items()}
    row["ratio_of_medians"] = row["tokens_per_sec"]["lmlab"]["median"] / row["tokens_per_sec"]["hf"]["median"]
    row["paired_ratios"] = [a / b for a, b in zip(tps["lmlab"], tps["hf"])]
    if args.device == "cuda":
        peak = peak_flops(torch.device("cuda", 0), "bf16")
        row["mfu"] = {k: row["tokens_per_sec"][k]["median"] * fpt / peak for k in tps}
    return row


def print_table(rows: list[dict], device: str) -> None:
    head = f"{'config':<9} {'dtype':<5} {'variant':<8} {'lmlab tok/s (min-max)':>26} " \
           f"{'HF tok/s (min-max)':>26} {'ratio':>6}"
    head += f" {'MFU lmlab':>9} {'MFU HF':>7}" if device == "cuda" else ""
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        cells = []
        for k in ("lmlab", "hf"):
            s = r["tokens_per_sec"][k]
            cells.append(f"{s['median']:>9,.0f} ({s['min']:,.0f}-{s['max']:,.0f})".rjust(26))
        line = f"{r['config']:<9} {r['dtype']:<5} {r['variant']:<8} {cells[0]} {cells[1]} " \
               f"{r['ratio_of_medians']:>5.2f}x"
        if device == "cuda":
            line += f" {100 * r['mfu']['lmlab']:>8.1f}% {100 * r['mfu']['hf']:>6.1f}%"
        print(line)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out) / "train_throughput.json"
    result = {"env": environment(args), "complete": False, "rows": []}
    variants = ["eager"] + (["compile"] if args.compile else [])
    for name in args.configs:
        for dtype in args.dtypes:
            for variant in variants:
                print(f"[{name} {dtype} {variant}] ...", end=" ", flush=True)
                t = time.perf_counter()
                row = bench_row(name, dtype, variant, args)
                result["rows"].append(row)
                print(f"fp32 |loss delta| {row['loss_check_fp32']['abs_delta']:.1e}, "
                      f"ratio {row['ratio_of_medians']:.2f}x ({time.perf_counter() - t:.0f} s)", flush=True)
                write_json(out, result)  # partial results survive an interrupted run
    result["complete"] = True
    result["loadavg_1_5_15_at_end"] = os.getloadavg()  # > threads: other processes shared the cores
    write_json(out, result)
    print_table(result["rows"], args.device)
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

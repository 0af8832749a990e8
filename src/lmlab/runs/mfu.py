"""Model FLOPs utilisation: the device's dense peak FLOP/s that every trainer's MFU is measured against."""

from __future__ import annotations

import functools
import time

import torch

_PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def peak_flops(device: torch.device, dtype: str) -> float:
    """Dense peak FLOP/s: datasheet bf16 for known GPUs (fp32 runs: TF32 = half of it); on CPU, the
    measured rate of a large GEMM run the way the trainers run theirs (MFU on CPU is 'fraction of achievable
    GEMM')."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in _PEAK_BF16.items() if k in name), 312e12)
        return peak if dtype == "bf16" else peak / 2
    return _cpu_gemm_flops(dtype, torch.get_num_threads())  # measured once per process and thread count


@functools.cache
def _cpu_gemm_flops(dtype: str, threads: int, n: int = 1024, budget_s: float = 0.25) -> float:
    """FLOP/s of `F.linear` on (n, n) x (n, n) fp32 tensors, under bf16 autocast for dtype bf16 (as the trainers
    compute), after one warm-up call, timed for ~budget_s (at least 2 calls). Not a plain bf16 `a @ b`: on a CPU
    without AVX512-BF16/AMX that falls back to a path an order of magnitude slower than the autocast linear,
    which took 14 s per training start for a fixed 5 calls and made bf16 MFU meaningless. `threads`: the
    cache key (the rate is measured once per process and torch thread count)."""
    import torch.nn.functional as F

    a, b = torch.randn(n, n), torch.randn(n, n)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16"):
        F.linear(a, b)
        reps, t = 0, time.perf_counter()
        while reps < 2 or time.perf_counter() - t < budget_s:
            F.linear(a, b)
            reps += 1
        elapsed = time.perf_counter() - t
    return 2 * n**3 * reps / elapsed

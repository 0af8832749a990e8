"""Model FLOPs utilisation: the device's dense peak FLOP/s that every trainer's MFU is measured against."""

from __future__ import annotations

import time

import torch

_PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10": 125e12, "4090": 165e12}


def peak_flops(device: torch.device, dtype: str) -> float:
    """Dense peak FLOP/s: datasheet bf16 for known GPUs (fp32 runs: TF32 = half of it); on CPU, the
    measured rate of a large fp32/bf16 GEMM on this machine (MFU on CPU is 'fraction of achievable GEMM')."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        peak = next((v for k, v in _PEAK_BF16.items() if k in name), 312e12)
        return peak if dtype == "bf16" else peak / 2
    return _cpu_gemm_flops(dtype)


def _cpu_gemm_flops(dtype: str, n: int = 1024) -> float:
    dt = torch.bfloat16 if dtype == "bf16" else torch.float32
    a, b = torch.randn(n, n, dtype=dt), torch.randn(n, n, dtype=dt)
    a @ b
    t, reps = time.perf_counter(), 5
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t)

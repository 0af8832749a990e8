"""The CPU peak that every trainer's MFU divides by: measured once per process and thread count, per dtype."""

import math

import torch

from lmlab.runs import mfu


def test_cpu_peak_is_measured_once_per_dtype_and_thread_count():
    cpu = torch.device("cpu")
    mfu._cpu_gemm_flops.cache_clear()
    fp32, bf16 = mfu.peak_flops(cpu, "fp32"), mfu.peak_flops(cpu, "bf16")
    assert all(math.isfinite(r) and r > 1e8 for r in (fp32, bf16))
    assert mfu.peak_flops(cpu, "fp32") == fp32 and mfu._cpu_gemm_flops.cache_info().hits == 1
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        mfu.peak_flops(cpu, "fp32")
        assert mfu._cpu_gemm_flops.cache_info().misses == 3  # a new thread count is a new measurement
    finally:
        torch.set_num_threads(threads)

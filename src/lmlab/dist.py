"""torchrun helpers: rank, world size, process-group setup, rank-0 printing.

Nothing home-made beyond torch.distributed: processes are started by `torchrun`, which sets RANK,
WORLD_SIZE, LOCAL_RANK and MASTER_ADDR/PORT; we only read them and call init_process_group
(gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import os
import sys


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def is_distributed() -> bool:
    import torch.distributed as tdist

    return tdist.is_available() and tdist.is_initialized()


def device(spec: str = "auto"):
    """torch.device for "auto" | "cpu" | "cuda": auto = cuda when available; cuda = this rank's local GPU.

    "cuda" on a machine without a usable CUDA device (or with fewer devices than this rank's LOCAL_RANK needs) is
    a ConfigError, raised before any work starts: there is no silent fallback to the CPU ("auto" is the
    fallback, for those who want one)."""
    import torch

    from lmlab.errors import ConfigError

    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    if spec not in ("cpu", "cuda"):
        raise ConfigError(f"device={spec!r} is not allowed", "choose one of 'auto', 'cpu', 'cuda'")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        why = (f"this torch ({torch.__version__}) is built without CUDA" if torch.version.cuda is None
               else "no CUDA GPU is visible (driver, CUDA_VISIBLE_DEVICES)")
        raise ConfigError(f"device=cuda but {why}",
                          "set device=cpu, or device=auto (the GPU when there is one), e.g. --set device=cpu")
    if local_rank() >= torch.cuda.device_count():
        raise ConfigError(f"LOCAL_RANK {local_rank()} needs GPU {local_rank()} but {torch.cuda.device_count()} "
                          "are visible", "start no more processes per node than there are GPUs")
    return torch.device("cuda", local_rank())


def native_bf16(device) -> bool:
    """Whether `device` runs bf16 matmuls in hardware: a CUDA GPU that supports bf16 (Ampere and later), or a
    CPU with AVX512-BF16 or AMX tiles. Elsewhere torch emulates bf16 through fp32, and it is slower than fp32
    itself: on a 2-core AVX2 EPYC, GLP training ran 34x and the harvest 4.95x slower in bf16 than in fp32
    (bench/dtype_speed.py, docs/benchmarks.md)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    cpu = torch.cpu  # the capability probes are private; a torch without them counts as "not native"
    return any(getattr(cpu, probe, lambda: False)() for probe in ("_is_avx512_bf16_supported",
                                                                   "_is_amx_tile_supported"))


def compute_dtype(spec: str, device) -> str:
    """The compute dtype a config's `dtype` means on `device`: "auto" -> "bf16" where native_bf16(device), else
    "fp32"; "bf16" and "fp32" as given. An explicit "bf16" on a device that emulates it runs, with one line on
    stderr (it is a choice, e.g. to match a GPU run's numerics; it is not fast)."""
    if spec == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    if spec == "bf16" and not native_bf16(device) and is_main():
        print(f"note: dtype=bf16 on a {device.type} without native bf16 is emulated and slower than fp32; "
              "dtype=auto picks fp32 here", file=sys.stderr)
    return spec


def init(device: str = "cpu") -> None:
    """Initialise the default process group if launched by torchrun with WORLD_SIZE > 1."""
    import torch
    import torch.distributed as tdist

    if world_size() == 1 or is_distributed():
        return
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    tdist.init_process_group(backend=backend)


def barrier() -> None:
    if is_distributed():
        import torch.distributed as tdist

        tdist.barrier()


def cleanup() -> None:
    if is_distributed():
        import torch.distributed as tdist

        tdist.destroy_process_group()


def print0(*args, **kwargs) -> None:
    """print() on rank 0 only (to stderr: stdout is reserved for --json output)."""
    if is_main():
        print(*args, file=kwargs.pop("file", sys.stderr), **kwargs)


def ddp(module, device):
    """`module` wrapped in torch's DistributedDataParallel when launched by torchrun with several ranks (applied
    from outside the model, torchtitan-style), else `module` itself."""
    if world_size() == 1:
        return module
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(module, device_ids=[device.index] if device.type == "cuda" else None)

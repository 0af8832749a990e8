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

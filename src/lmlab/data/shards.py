"""Token shards: flat token files with a small header, plus an optional float16 side channel.

File layout (little-endian), for `NAME.bin`:
    bytes  0..7   magic b"LMLABTOK"
    bytes  8..11  uint32 format version (1)
    bytes 12..15  uint32 bytes per token (2 = uint16, 4 = uint32; uint16 when vocab <= 65536)
    bytes 16..23  uint64 number of tokens
    bytes 24..31  uint64 vocab size
    bytes 32..63  reserved (zero)
    then the tokens.
The side channel `NAME.side` is the same header with magic b"LMLABSID", 2 bytes per value, followed by one
float16 per token at the same positions (a per-token score such as p(forget), used for loss masking and
token removal in lm/train.py). Readers memory-map both files (nanoGPT/llm.c style); writers write a temp
name and rename, so a shard is either absent or whole.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lmlab.errors import DataError
from lmlab.io import atomic_path

HEADER_BYTES = 64
_HDR = struct.Struct("<8sIIQQ")
TOKEN_MAGIC, SIDE_MAGIC, VERSION = b"LMLABTOK", b"LMLABSID", 1


def _header(magic: bytes, itemsize: int, n: int, vocab: int) -> bytes:
    return _HDR.pack(magic, VERSION, itemsize, n, vocab).ljust(HEADER_BYTES, b"\0")


def write_shard(path: str | os.PathLike, tokens: np.ndarray, vocab_size: int, side: np.ndarray | None = None) -> Path:
    """Write `tokens` (1-D ints) to `path` (.bin) and, if given, `side` (1-D floats) to `path.with_suffix('.side')`."""
    path = Path(path)
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise DataError(f"tokens must be 1-D, got shape {tokens.shape}", "flatten the token stream first")
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocab_size):
        raise DataError(f"token ids outside [0, {vocab_size})", "pass the tokenizer's vocab size")
    dtype = np.uint16 if vocab_size <= 2**16 else np.uint32
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(_header(TOKEN_MAGIC, np.dtype(dtype).itemsize, tokens.size, vocab_size))
        f.write(tokens.astype(dtype).tobytes())
    if side is not None:
        write_side(path, side)
    return path


def write_side(path: str | os.PathLike, side: np.ndarray) -> Path:
    """Write (or replace) the float16 side channel of the shard at `path`; length must match the tokens."""
    path = Path(path)
    side = np.asarray(side, dtype=np.float32)
    n = read_header(path, TOKEN_MAGIC)[1]
    if side.ndim != 1 or side.size != n:
        raise DataError(f"side channel has shape {side.shape}, shard {path.name} has {n} tokens",
                        "give one score per token")
    if not np.isfinite(side).all():
        raise DataError(f"side channel for {path.name} has NaN/inf", "clean the per-token scores")
    out = path.with_suffix(".side")
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        f.write(_header(SIDE_MAGIC, 2, n, 0))
        f.write(side.astype(np.float16).tobytes())
    return out


def read_header(path: Path, magic: bytes) -> tuple[int, int, int]:
    """(itemsize, n_tokens, vocab_size) after checking magic, version and file size."""
    if not path.is_file():
        raise DataError(f"missing shard {path}", "run `lmlab data prepare` (or check the --data path)")
    with open(path, "rb") as f:
        raw = f.read(HEADER_BYTES)
    fix = f"re-create it with `lmlab data prepare` (the file {path.name} is damaged or not an lmlab shard)"
    if len(raw) < HEADER_BYTES:
        raise DataError(f"corrupt shard header in {path}: file shorter than the {HEADER_BYTES}-byte header", fix)
    got_magic, version, itemsize, n, vocab = _HDR.unpack(raw[: _HDR.size])
    if got_magic != magic:
        raise DataError(f"corrupt shard header in {path}: magic {got_magic!r} != {magic!r}", fix)
    if version != VERSION or itemsize not in (2, 4):
        raise DataError(f"corrupt shard header in {path}: version {version}, itemsize {itemsize}", fix)
    if path.stat().st_size != HEADER_BYTES + n * itemsize:
        raise DataError(f"corrupt shard {path}: header says {n} tokens, size is {path.stat().st_size} bytes", fix)
    return itemsize, n, vocab


class Shard(NamedTuple):
    """A memory-mapped token shard."""

    path: Path
    tokens: np.ndarray
    """(n,) uint16/uint32 memmap of token ids."""
    side: np.ndarray | None
    """(n,) float16 memmap of per-token scores, or None when the shard has no side channel."""
    vocab_size: int

    def __len__(self) -> int:
        return len(self.tokens)


def open_shard(path: str | os.PathLike) -> Shard:
    path = Path(path)
    itemsize, n, vocab = read_header(path, TOKEN_MAGIC)
    tokens = np.memmap(path, dtype=np.uint16 if itemsize == 2 else np.uint32, mode="r", offset=HEADER_BYTES, shape=(n,))
    side = None
    side_path = path.with_suffix(".side")
    if side_path.exists():
        _, n_side, _ = read_header(side_path, SIDE_MAGIC)
        if n_side != n:
            raise DataError(f"{side_path.name} has {n_side} values for {n} tokens", "rewrite the side channel")
        side = np.memmap(side_path, dtype=np.float16, mode="r", offset=HEADER_BYTES, shape=(n,))
    return Shard(path, tokens, side, vocab)


def windows(shard: Shard, starts: np.ndarray, T: int, reverse: bool = False):
    """Gather (x, y, side_x, side_y) for windows starting at `starts`: x = tokens[s:s+T], y = tokens[s+1:s+T+1];
    with reverse=True the window tokens[s:s+T+1] is read backwards (right-to-left language modelling: the biLM's
    second half): x[t] = tokens[s+T-t], y[t] = tokens[s+T-t-1].

    Returns torch tensors: x, y int64 (B, T); side_x, side_y float32 (B, T) or None.
    """
    import torch

    idx = starts[:, None] + np.arange(T + 1)[None, :]  # (B, T+1)
    if reverse:
        idx = idx[:, ::-1].copy()
    tok = torch.from_numpy(shard.tokens[idx].astype(np.int64))
    side = None if shard.side is None else torch.from_numpy(shard.side[idx].astype(np.float32))
    return (tok[:, :-1], tok[:, 1:],
            None if side is None else side[:, :-1], None if side is None else side[:, 1:])


def eval_starts(shard: Shard, T: int, max_windows: int) -> np.ndarray:
    """Start offsets of the first `max_windows` non-overlapping length-T windows (a fixed eval set)."""
    n = (len(shard) - 1) // T
    if n < 1:
        raise DataError(f"{shard.path.name} has {len(shard)} tokens, fewer than one window of {T + 1}",
                        "use a shorter seq_len or more held-out data")
    return np.arange(min(n, max_windows), dtype=np.int64) * T

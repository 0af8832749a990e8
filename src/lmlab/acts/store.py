"""Sharded activation store: crash-safe writing by several ranks, memory-mapped reading, exact statistics.

Layout of a store directory (shard files headerless, row-major, little-endian):
    acts-r{RR}-{IIIIII}.bin  (count, d_model) activations in the store dtype: "float32", or "bfloat16" kept
                             as raw 2-byte bf16 bit patterns (uint16 on disk)
    prov-r{RR}-{IIIIII}.bin  (count,) PROV_DTYPE: doc (int64, global document index), pos (int32, position in
                             the doc), token (int32), domain (int16, index into meta["domains"])
    manifest.r{RR}.json      per-rank truth, rewritten after every commit: meta, world, shards (names, counts,
                             sha256), running stats {count, mean, m2, norm_sum} (float64), the caller's cursor
    manifest.json            merged view written by `merge_store` (shards of all ranks in rank order) ...
    stats.safetensors        ... with float64 mean (d,), var (d,) (population), count, mean_norm
    .lock.r{RR}              flock of the live writer of rank RR (two harvests into one --out would clash)

Crash safety: shard files are written whole to a temp name, fsync'ed and renamed (`lmlab.io.atomic_path`);
only then is the rank manifest that lists them replaced, atomically. Files no manifest lists (a kill -9
mid-commit) are invisible to readers and deleted by the next writer of that rank, which resumes from the
manifest's cursor. Rank stats live in the JSON manifest (float repr round-trips float64 exactly) so that
shards, stats and cursor change in one atomic rename; a stats file beside it could disagree after a crash.

Statistics are computed from the *stored* values (after bf16 rounding), in float64, per shard, and combined
with Chan et al.'s parallel update of (n, mean, M2): exact up to float64 rounding, across shards and ranks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from lmlab.errors import ConfigError, DataError
from lmlab.io import atomic_path, read_json, save_safetensors, write_json

FORMAT, VERSION = "lmlab-acts", 1
PROV_DTYPE = np.dtype([("doc", "<i8"), ("pos", "<i4"), ("token", "<i4"), ("domain", "<i2")])
DTYPES = {"bfloat16": np.dtype("<u2"), "float32": np.dtype("<f4")}  # on-disk element type per store dtype
META_KEYS = ("model", "layer", "d_model", "dtype", "domains", "compute_dtype")  # must match for a resume to append
# safely (compute_dtype: the model's dtype, absent from stores harvested before it was recorded)
WRITE_HINT = "free disk space (or choose another --out) and rerun the same command to resume"

Stats = tuple[int, np.ndarray, np.ndarray, float]  # (count, mean, M2, sum of L2 norms), float64


def _names(rank: int, i: int) -> tuple[str, str]:
    return f"acts-r{rank:02d}-{i:06d}.bin", f"prov-r{rank:02d}-{i:06d}.bin"


def _rank_manifest_name(rank: int) -> str:
    return f"manifest.r{rank:02d}.json"


# ---------------------------------------------------------------- statistics

def _empty_stats(d: int) -> Stats:
    return 0, np.zeros(d), np.zeros(d), 0.0


def _chan(a: Stats, b: Stats) -> Stats:
    """Combine two (n, mean, M2, norm_sum) summaries exactly (Chan, Golub & LeVeque's parallel variance)."""
    (na, ma, m2a, sa), (nb, mb, m2b, sb) = a, b
    if nb == 0:
        return a
    if na == 0:
        return b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * (nb / n), m2a + m2b + delta * delta * (na * nb / n), sa + sb


def _to_f32(rows: np.ndarray, dtype: str) -> np.ndarray:
    """Stored rows -> float32 (bf16 bit patterns are the top half of a float32, so this is exact)."""
    if dtype == "bfloat16":
        return (rows.astype(np.uint32) << 16).view(np.float32)
    return np.asarray(rows, dtype=np.float32)


def _moments(rows: np.ndarray, dtype: str) -> Stats:
    """Float64 stats of stored rows, in chunks so a 65536 x 4096 shard never needs a 2 GiB float64 copy."""
    d = rows.shape[1]
    acc, step = _empty_stats(d), max(1, 2**22 // d)
    for s in range(0, len(rows), step):
        x = _to_f32(rows[s:s + step], dtype).astype(np.float64)
        mean = x.mean(0)
        part = len(x), mean, ((x - mean) ** 2).sum(0), float(np.sqrt((x * x).sum(1)).sum())
        acc = _chan(acc, part)
    return acc


def _stats_json(s: Stats) -> dict:
    return {"count": s[0], "mean": s[1].tolist(), "m2": s[2].tolist(), "norm_sum": s[3]}


def _stats_from_json(j: dict) -> Stats:
    mean, m2 = np.asarray(j["mean"], np.float64), np.asarray(j["m2"], np.float64)
    return int(j["count"]), mean, m2, float(j["norm_sum"])


# ---------------------------------------------------------------- manifests

NO_STORE_HINT = "run `lmlab acts harvest --out DIR` first, or check the path"

def _rank_manifests(path: Path) -> dict[int, dict]:
    found = {}
    for p in sorted(path.glob("manifest.r[0-9][0-9].json")):
        m = read_json(p)
        found[int(m["rank"])] = m
    return dict(sorted(found.items()))


def _check_meta(old: dict, new: dict, path: Path) -> None:
    for key in META_KEYS:
        if (key in old or key != "compute_dtype") and old.get(key) != new.get(key):
            fix = (f"rerun with --dtype {old[key]} to continue it" if key == "compute_dtype"
                   else "use another --out or the same model/layer")
            raise DataError(f"{path} holds a store with {key}={old.get(key)!r}, not {new.get(key)!r}", fix)


def _merge(path: Path, require_all: bool = False) -> tuple[dict, Stats]:
    """Merged manifest + stats from the per-rank manifests (rank order), without writing anything."""
    ranks = _rank_manifests(path)
    if not ranks:
        raise DataError(f"no activation store at {path}", NO_STORE_HINT)
    first = next(iter(ranks.values()))
    meta, world = first["meta"], int(first["world"])
    missing = sorted(set(range(world)) - set(ranks))
    if require_all and missing:
        r = missing[0]
        raise DataError(f"{path} lacks {_rank_manifest_name(r)} (rank {r} of {world} never started)",
                        "rerun the harvest with the same number of processes to finish it")
    stats, shards = _empty_stats(int(meta["d_model"])), []
    for r, m in ranks.items():
        _check_meta(meta, m["meta"], path)
        shards += [{"rank": r, **s} for s in m["shards"]]
        stats = _chan(stats, _stats_from_json(m["stats"]))
    top = {k: meta[k] for k in ("model", "layer", "d_model", "dtype")}  # DESIGN.md: readable at a glance
    manifest = {"format": FORMAT, "version": VERSION, **top, "meta": meta, "count": stats[0], "world": world,
                "shards": shards,
                "ranks": [{"rank": r, "count": m["count"], "cursor": m["cursor"]} for r, m in ranks.items()],
                "stats_file": "stats.safetensors"}
    if (padding := _padding([m["cursor"] for m in ranks.values()])) is not None:
        manifest["padding"] = padding
    return manifest, stats


def _padding(cursors: list[dict | None]) -> dict | None:
    """{"positions", "real", "share"} summed over ranks when every cursor counts the positions its forward
    passes processed and the real tokens among them (the harvester's cursors do, since issue 18)."""
    if not cursors or any(not c or "positions" not in c or "real" not in c for c in cursors):
        return None
    positions, real = sum(int(c["positions"]) for c in cursors), sum(int(c["real"]) for c in cursors)
    return {"positions": positions, "real": real, "share": 1 - real / positions if positions else 0.0}


def _load_manifest(path: Path) -> tuple[dict, Stats | None]:
    """manifest.json when present (stats then come from stats.safetensors), else the on-the-fly merge."""
    if not path.is_dir():
        raise DataError(f"no activation store at {path}", NO_STORE_HINT)
    if (path / "manifest.json").is_file():
        m = read_json(path / "manifest.json")
        if m.get("format") != FORMAT:
            raise DataError(f"{path / 'manifest.json'} is not an lmlab activation store manifest",
                            "point at a directory written by `lmlab acts harvest`")
        return m, None
    return _merge(path)


def merge_store(path: str | os.PathLike) -> dict:
    """Rank 0, after all ranks closed: write stats.safetensors then manifest.json; return the manifest."""
    import torch

    path = Path(path)
    manifest, (n, mean, m2, norm_sum) = _merge(path, require_all=True)
    old = path / "manifest.json"
    if old.is_file() and (path / "stats.safetensors").is_file() and read_json(old) == manifest:
        return manifest  # already merged: leave the files (and their mtimes) alone
    var = m2 / n if n else np.zeros_like(m2)
    save_safetensors(path / "stats.safetensors", {
        "mean": torch.from_numpy(mean), "var": torch.from_numpy(var),
        "count": torch.tensor(n, dtype=torch.int64),
        "mean_norm": torch.tensor(norm_sum / n if n else 0.0, dtype=torch.float64)})
    write_json(path / "manifest.json", manifest)  # last: it is what makes the merged stats visible
    return manifest


def _shard_sizes(manifest: dict) -> Iterator[tuple[str, int, str]]:
    """(file name, expected bytes, sha256) for every file the manifest lists."""
    meta = manifest["meta"]
    row = int(meta["d_model"]) * DTYPES[meta["dtype"]].itemsize
    for s in manifest["shards"]:
        yield s["acts"], s["count"] * row, s["sha256_acts"]
        yield s["prov"], s["count"] * PROV_DTYPE.itemsize, s["sha256_prov"]


def _problems(path: Path, manifest: dict, checksums: bool) -> list[str]:
    """One line per listed file that is missing, of the wrong size for its count, or (checksums) corrupt."""
    out = []
    for name, size, sha in _shard_sizes(manifest):
        f = path / name
        if not f.is_file():
            out.append(f"{name}: missing")
        elif (got := f.stat().st_size) != size:
            out.append(f"{name}: {got} bytes, but its count in the manifest needs {size}")
        elif checksums and _sha256_file(f) != sha:
            out.append(f"{name}: sha256 mismatch (contents changed since written)")
    return out


def _sha256_file(p: Path) -> str:
    h = hashlib.sha256()
    with open(p, "rb") as f:
        while chunk := f.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()


def verify_store(path: str | os.PathLike) -> list[str]:
    """Every listed shard's size (= count) and sha256 against the manifest; [] when the store is valid."""
    path = Path(path)
    manifest, stats = _load_manifest(path)
    problems = _problems(path, manifest, checksums=True)
    if stats is None:  # merged store: its stats file must describe the same rows
        from safetensors.numpy import load_file

        f = path / manifest.get("stats_file", "stats.safetensors")
        if not f.is_file() or int(load_file(str(f))["count"]) != manifest["count"]:
            problems.append(f"{f.name}: missing, or its count differs from manifest.json")
    return problems


# ---------------------------------------------------------------- writing

def _dump(arr: np.ndarray, tmp: Path) -> None:
    """The one low-level write (tests make it fail to simulate a full disk)."""
    with open(tmp, "wb") as f:
        arr.tofile(f)


def _write_array(path: Path, arr: np.ndarray) -> str:
    """Write `arr` whole to a temp name, fsync, rename; return its sha256."""
    arr = np.ascontiguousarray(arr)
    with atomic_path(path) as tmp:
        _dump(arr, tmp)
    return hashlib.sha256(arr).hexdigest()


class StoreWriter:
    """Append activations of one rank; `commit(cursor)` makes them durable together with the resume cursor.

    meta: {"model", "layer", "d_model", "dtype": "bfloat16"|"float32", "domains": [...], "config": {...}}.
    resume=False refuses a directory already holding this rank's store; resume=True continues it (after
    checking that model/layer/d_model/dtype/domains and world agree) or starts fresh when there is none.
    """

    def __init__(self, path: str | os.PathLike, meta: dict, shard_size: int = 65536, rank: int = 0,
                 world: int = 1, resume: bool = False):
        if meta.get("dtype") not in DTYPES:
            raise ConfigError(f"store dtype {meta.get('dtype')!r} is not supported",
                              f"use one of {sorted(DTYPES)}")
        if shard_size < 1 or not 0 <= rank < world or int(meta.get("d_model", 0)) < 1:
            raise ValueError(f"bad shard_size={shard_size}, rank={rank}, world={world} or d_model")
        self.path, self.meta, self.shard_size = Path(path), dict(meta), shard_size
        self.rank, self.world, self.d = rank, world, int(meta["d_model"])
        if self.path.exists() and not self.path.is_dir():
            raise DataError(f"{self.path} is a file, not a store directory", "choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock()
        try:
            own = self._check_existing(resume)
        except BaseException:
            self._lock_file.close()  # a refused writer must not keep the store locked
            raise
        self._shards: list[dict] = own["shards"] if own else []
        self._stats: Stats = _stats_from_json(own["stats"]) if own else _empty_stats(self.d)
        self._cursor: dict | None = own["cursor"] if own else None
        self._buf: list[tuple[np.ndarray, np.ndarray]] = []
        self._buffered = 0
        self._remove_strays()
        if own is None:  # an empty manifest at once: meta on disk before any data, and the store is valid
            self._write_manifest(self._shards, self._stats, None)

    def _lock(self) -> None:
        import fcntl

        # held open for the writer's lifetime, so no context manager
        self._lock_file = open(self.path / f".lock.r{self.rank:02d}", "a")  # noqa: SIM115 ("a": mtime kept)
        try:  # released by the OS when the process dies, so a kill -9 never leaves the store locked
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            self._lock_file.close()
            raise DataError(f"another process is writing rank {self.rank} of {self.path}",
                            "wait for it to finish, or choose another --out") from e

    def _check_existing(self, resume: bool) -> dict | None:
        ranks = _rank_manifests(self.path)
        merged = self.path / "manifest.json"
        others = list(ranks.values()) + ([read_json(merged)] if merged.is_file() else [])
        for m in others:
            _check_meta(m["meta"], self.meta, self.path)
            if int(m["world"]) != self.world:
                raise DataError(f"{self.path} was harvested by {m['world']} processes, not {self.world}",
                                "rerun with the same number of processes, or choose another --out")
        own = ranks.get(self.rank)
        if (own or merged.is_file()) and not resume:
            raise DataError(f"{self.path} already holds an activation store",
                            "rerun the same command to resume it, or choose a new --out")
        merged_shards = read_json(merged)["shards"] if merged.is_file() else []
        if own is None and any(s["rank"] == self.rank for s in merged_shards):
            raise DataError(f"{self.path} lacks {_rank_manifest_name(self.rank)}, so it cannot be resumed",
                            "choose a new --out")
        if own and (problems := _problems(self.path, own, checksums=False)):
            raise DataError(f"{self.path} is damaged ({problems[0]})",
                            "choose a new --out and harvest again")
        return own

    def _remove_strays(self) -> None:
        """Delete this rank's files that no manifest lists: leftovers of a kill -9 mid-commit."""
        keep = {s[k] for s in self._shards for k in ("acts", "prov")}
        r = f"{self.rank:02d}"
        patterns = [f"acts-r{r}-*", f"prov-r{r}-*", f"manifest.r{r}.json.tmp-*"]
        if self.rank == 0:  # rank 0 owns the merge
            patterns += ["manifest.json.tmp-*", "stats.safetensors.tmp-*"]
        for pattern in patterns:
            for p in self.path.glob(pattern):
                if p.name not in keep:
                    p.unlink(missing_ok=True)

    @property
    def cursor(self) -> dict | None:
        """The cursor of this rank's last commit (None when fresh): where the harvest resumes."""
        return self._cursor

    def add(self, acts, doc, pos, token, domain) -> None:
        """Buffer n rows: acts (n, d) tensor (any float dtype); doc/pos/token/domain: length n, or scalars."""
        import torch

        acts = torch.as_tensor(acts).detach().cpu()
        if acts.ndim != 2 or acts.shape[1] != self.d:
            raise ValueError(f"acts must be (n, {self.d}), got {tuple(acts.shape)}")
        if not torch.isfinite(acts).all():
            raise DataError(f"non-finite activations (NaN/inf) for rank {self.rank} after {self.count} rows",
                            "check the model and its dtype (float16 overflow?)")
        if self.meta["dtype"] == "bfloat16":  # torch rounds to nearest even; keep the raw bit pattern
            rows = acts.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        else:
            rows = acts.to(torch.float32).numpy()
        n, domain = len(rows), np.asarray(domain)
        if domain.size and (domain.min() < 0 or domain.max() >= max(1, len(self.meta["domains"]))):
            raise ValueError(f"domain outside [0, {len(self.meta['domains'])}): give indices into domains")
        prov = np.empty(n, PROV_DTYPE)
        for field, value in (("doc", doc), ("pos", pos), ("token", token), ("domain", domain)):
            prov[field] = np.broadcast_to(np.asarray(value), (n,))
        self._buf.append((rows.copy(), prov))  # copy: .numpy() may share a tensor the caller then reuses
        self._buffered += n

    @property
    def count(self) -> int:
        """Rows added by this rank so far (committed + buffered)."""
        return self._stats[0] + self._buffered

    def commit(self, cursor: dict) -> None:
        """Once a shard's worth is buffered, write all buffered rows + the manifest carrying `cursor`."""
        if self._buffered >= self.shard_size:
            self._flush(cursor)

    def close(self, cursor: dict) -> None:
        """Flush whatever is buffered (even a partial shard) and write the final manifest of this rank."""
        self._flush(cursor)
        self._lock_file.close()

    def _flush(self, cursor: dict) -> None:
        """Write all buffered rows as shards, then the manifest; on OSError keep the previous state intact."""
        pieces = []
        if self._buf:  # all of it, in shards of shard_size..2*shard_size-1 rows: the cursor covers every row
            rows, prov = (np.concatenate(x) for x in zip(*self._buf))
            k = max(1, len(rows) // self.shard_size)
            pieces = list(zip(np.array_split(rows, k), np.array_split(prov, k)))
        if not pieces and cursor == self._cursor:
            return  # nothing new to record: a rerun of a finished harvest leaves the store untouched
        shards, stats, written, name = list(self._shards), self._stats, [], _rank_manifest_name(self.rank)
        try:
            for a, p in pieces:
                names, shas = _names(self.rank, len(shards)), []
                for name, arr in zip(names, (a, p)):
                    shas.append(_write_array(self.path / name, arr))
                    written.append(name)
                shards.append({"acts": names[0], "prov": names[1], "count": len(a),
                               "sha256_acts": shas[0], "sha256_prov": shas[1]})
                stats = _chan(stats, _moments(a, self.meta["dtype"]))
            name = _rank_manifest_name(self.rank)
            self._write_manifest(shards, stats, cursor)
        except OSError as e:  # the old manifest still stands; the files it does not list go away
            for n in written:
                (self.path / n).unlink(missing_ok=True)
            raise DataError(f"writing {name} failed ({e.strerror or e})", WRITE_HINT) from e
        self._shards, self._stats, self._cursor = shards, stats, cursor
        self._buf, self._buffered = [], 0

    def _write_manifest(self, shards: list[dict], stats: Stats, cursor: dict | None) -> None:
        # the merged view goes stale with this write; until now it still described committed rows exactly
        for name in ("manifest.json", "stats.safetensors"):
            (self.path / name).unlink(missing_ok=True)
        write_json(self.path / _rank_manifest_name(self.rank), {
            "format": FORMAT, "version": VERSION, "rank": self.rank, "world": self.world, "meta": self.meta,
            "count": stats[0], "shards": shards, "stats": _stats_json(stats), "cursor": cursor})


# ---------------------------------------------------------------- reading

class ActivationStore:
    """Read-only view of a store: memory-mapped shards, global row indices in manifest order."""

    def __init__(self, path: Path, manifest: dict, stats: Stats | None):
        self.path, self.manifest, self._stats = path, manifest, stats
        self.meta: dict = manifest["meta"]
        self.model, self.layer, self.dtype = self.meta["model"], int(self.meta["layer"]), self.meta["dtype"]
        self.d_model, self.domains = int(self.meta["d_model"]), list(self.meta.get("domains", []))
        self.shards: list[dict] = manifest["shards"]
        self.starts = np.concatenate([[0], np.cumsum([s["count"] for s in self.shards], dtype=np.int64)])
        self.count = int(self.starts[-1])
        self._maps: dict[tuple[str, int], np.ndarray] = {}

    @classmethod
    def open(cls, path: str | os.PathLike) -> ActivationStore:
        path = Path(path)
        manifest, stats = _load_manifest(path)
        if manifest["meta"].get("dtype") not in DTYPES:
            raise DataError(f"{path}: unknown store dtype {manifest['meta'].get('dtype')!r}",
                            "harvest it again")
        if problems := _problems(path, manifest, checksums=False):
            raise DataError(f"{path} is damaged ({problems[0]})",
                            f"run `lmlab acts verify {path}`; harvest it again")
        return cls(path, manifest, stats)

    def __len__(self) -> int:
        return self.count

    @property
    def stats(self) -> dict:
        """{"mean", "var"}: float64 (d,) tensors (population variance); "mean_norm": float; "count": int."""
        import torch

        if self._stats is None:  # merged store: the file merge_store wrote
            from safetensors.torch import load_file

            f = self.path / self.manifest.get("stats_file", "stats.safetensors")
            t = load_file(str(f)) if f.is_file() else {}
            if int(t.get("count", torch.tensor(-1))) != self.count:
                raise DataError(f"{f} is missing or does not match manifest.json",
                                "rerun the harvest to re-merge")
            return {"mean": t["mean"], "var": t["var"], "mean_norm": float(t["mean_norm"]),
                    "count": self.count}
        n, mean, m2, norm_sum = self._stats
        return {"mean": torch.from_numpy(mean), "var": torch.from_numpy(m2 / max(n, 1)),
                "mean_norm": norm_sum / max(n, 1), "count": n}

    def _map(self, kind: str, i: int) -> np.ndarray:
        if (kind, i) not in self._maps:
            s = self.shards[i]
            if kind == "prov":
                dtype, shape = PROV_DTYPE, (s["count"],)
            else:
                dtype, shape = DTYPES[self.dtype], (s["count"], self.d_model)
            self._maps[kind, i] = np.memmap(self.path / s[kind], dtype=dtype, mode="r", shape=shape)
        return self._maps[kind, i]

    def _gather(self, kind: str, idx: np.ndarray, raw: bool = False) -> np.ndarray:
        """Rows at global `idx`, read shard by shard with sorted fancy indexing, returned in `idx` order."""
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self.count):
            raise IndexError(f"row index out of range [0, {self.count})")
        order = np.argsort(idx, kind="stable")  # sorting by global index groups by shard and reads forward
        sidx = idx[order]
        shard = np.searchsorted(self.starts, sidx, side="right") - 1
        out = None
        for i in np.unique(shard):
            lo, hi = np.searchsorted(shard, [i, i + 1])
            rows = self._map(kind, i)[sidx[lo:hi] - self.starts[i]]
            if kind == "acts" and not raw:
                rows = _to_f32(rows, self.dtype)
            if out is None:
                out = np.empty((len(idx), *rows.shape[1:]), rows.dtype)
            out[order[lo:hi]] = rows
        if out is None:
            out = np.empty((0, self.d_model), np.float32) if kind == "acts" else np.empty(0, PROV_DTYPE)
        return out

    def get(self, idx: np.ndarray, raw: bool = False):
        """Rows at global indices as a float32 torch tensor (n, d_model); raw=True: in the stored dtype
        (bf16 stays bf16: half the bytes to copy to a GPU, converted there)."""
        import torch

        rows = self._gather("acts", idx, raw)
        if raw and self.dtype == "bfloat16":
            return torch.from_numpy(np.ascontiguousarray(rows).view(np.int16)).view(torch.bfloat16)
        return torch.from_numpy(rows)

    def provenance(self, idx: np.ndarray | None = None) -> np.ndarray:
        """PROV_DTYPE rows (doc, pos, token, domain) at `idx`, or of the whole store (loaded into RAM)."""
        if idx is None:
            maps = [self._map("prov", i) for i in range(len(self.shards))]
            return np.concatenate(maps) if maps else np.empty(0, PROV_DTYPE)
        return self._gather("prov", idx)

    def epoch_indices(self, batch_size: int, seed: int = 0, epoch: int = 0, rank: int = 0, world: int = 1,
                      shuffle: bool = True, drop_last: bool = True) -> np.ndarray:
        """This rank's global indices for one epoch, in order (see `batches`)."""
        n = self.count
        order = np.random.default_rng([seed, epoch]).permutation(n) if shuffle else np.arange(n)
        unit = world * batch_size if drop_last else world
        order = order[: n - n % unit]
        return order[rank::world]

    def batches(self, batch_size: int, seed: int = 0, epoch: int = 0, rank: int = 0, world: int = 1,
                shuffle: bool = True, drop_last: bool = True) -> Iterator:
        """Float32 (batch_size, d) batches of one epoch for `rank` of `world`.

        The epoch is one permutation of ALL rows from default_rng([seed, epoch]) (identity if shuffle=False),
        so the same (seed, epoch) gives the same batches and no row is seen twice within an epoch. It is cut
        to a multiple of world*batch_size (drop_last; the < world*batch_size rows left out differ each epoch)
        or of world (otherwise; each rank's last batch may then be short), and rank r takes positions r,
        r+world, ... Every rank thus gets the same number of batches; the ranks' rows are disjoint and cover
        the cut. The permutation is held in RAM (8 bytes a row); rows come from the memory-mapped shards.
        """
        mine = self.epoch_indices(batch_size, seed, epoch, rank, world, shuffle, drop_last)
        for s in range(0, len(mine), batch_size):
            yield self.get(mine[s:s + batch_size])


HELD_OUT_MOD = 20


def split_rows(store: ActivationStore) -> tuple[np.ndarray, np.ndarray]:
    """(train row indices, held-out row indices) of a store, the split every trainer and evaluation on it
    shares: held out = every row of the documents with index % 20 == 19 (5% of the documents, so held-out
    rows come from many documents: a 1M-row SmolLM2 store gives ~650, enough for FD references)."""
    held = store.provenance()["doc"] % HELD_OUT_MOD == HELD_OUT_MOD - 1
    return np.nonzero(~held)[0], np.nonzero(held)[0]


def batch_rows(train_rows: np.ndarray, batch_size: int, seed: int, step: int, rank: int = 0,
               world: int = 1) -> np.ndarray:
    """This rank's rows of the global batch of `step`, a pure function of (seed, step): epoch e = step //
    steps_per_epoch draws one permutation of the train rows from default_rng([seed, e]) and the step takes the
    next global batch of it — no row twice in an epoch, exact resume, and K torchrun ranks take disjoint
    slices of the same global batch. Every trainer on a store (GLP, SAE) reads its batches through here."""
    per_epoch = len(train_rows) // batch_size
    if per_epoch < 1:
        raise DataError(f"the store has {len(train_rows)} training rows, fewer than one batch of {batch_size}",
                        "harvest more activations or lower batch_size")
    epoch, k = divmod(step, per_epoch)
    perm = np.random.default_rng([seed, epoch]).permutation(len(train_rows))
    rows = train_rows[perm[k * batch_size:(k + 1) * batch_size]]
    return rows[rank::world]


def open_for_training(path: str | os.PathLike, batch_size: int, world: int):
    """(store, train rows, held-out rows) for a trainer on a store; a global batch must split evenly over the
    torchrun ranks."""
    if batch_size % world:
        raise ConfigError(f"batch_size {batch_size} not divisible by {world} ranks", "adjust batch_size")
    store = ActivationStore.open(path)
    return (store, *split_rows(store))

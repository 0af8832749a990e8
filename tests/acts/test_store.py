"""Activation store: round trip, exact stats (incl. the cross-rank merge), verify, crash safety, write errors,
and epoch batches that neither drop nor duplicate rows (the anchor's epoch-boundary bug)."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from lmlab.acts import store as S
from lmlab.acts.store import ActivationStore, StoreWriter, merge_store, verify_store
from lmlab.errors import DataError


def meta(d=64, dtype="float32", layer=3):
    return {"model": "tiny", "layer": layer, "d_model": d, "dtype": dtype, "domains": ["a", "b"],
            "config": {}}


def data(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g) * 3 + 1
    doc = np.arange(n) // 7 + 1000 * seed
    return x, doc, np.arange(n) % 7 + 1, np.arange(n) % 500, np.arange(n) % 2


def write(path, x, doc, pos, tok, dom, shard_size=4000, chunk=1000, close=True, **kw):
    w = StoreWriter(path, meta(x.shape[1], **{k: kw.pop(k) for k in ("dtype", "layer") if k in kw}),
                    shard_size=shard_size, **kw)
    for s in range(0, len(x), chunk):
        sl = slice(s, min(s + chunk, len(x)))
        w.add(x[sl], doc[sl], pos[sl], tok[sl], dom[sl])
        w.commit({"next": s + chunk})
    if close:
        w.close({"next": len(x), "done": True})
    return w


def stored(x, dtype):
    return x.to(torch.bfloat16).float() if dtype == "bfloat16" else x


def np_stats(v: np.ndarray) -> dict:
    v = v.astype(np.float64)
    return {"mean": v.mean(0), "var": v.var(0), "mean_norm": np.linalg.norm(v, axis=1).mean()}


def assert_stats(st, v):
    ref = np_stats(v)
    assert st["count"] == len(v)
    np.testing.assert_allclose(st["mean"].numpy(), ref["mean"], atol=1e-9, rtol=0)
    np.testing.assert_allclose(st["var"].numpy(), ref["var"], atol=1e-9, rtol=0)
    assert abs(st["mean_norm"] - ref["mean_norm"]) < 1e-9


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_round_trip_shards_provenance_and_stats(tmp_path, dtype):
    x, doc, pos, tok, dom = data(10_000, 64)
    write(tmp_path, x, doc, pos, tok, dom, dtype=dtype)
    st = ActivationStore.open(tmp_path)
    assert [s["count"] for s in st.shards] == [4000, 4000, 2000]  # two full shards + close's partial one
    assert (len(st), st.d_model, st.dtype, st.layer, st.model) == (10_000, 64, dtype, 3, "tiny")
    assert (tmp_path / "acts-r00-000000.bin").stat().st_size == 4000 * 64 * (2 if dtype == "bfloat16" else 4)
    got = st.get(np.arange(10_000))
    assert got.dtype == torch.float32 and torch.equal(got, stored(x, dtype))  # exact, bf16 rounding included
    idx = np.array([9999, 0, 4000, 3999, 17, 17])
    assert torch.equal(st.get(idx), stored(x, dtype)[idx])
    prov = st.provenance()
    for field, ref in (("doc", doc), ("pos", pos), ("token", tok), ("domain", dom)):
        np.testing.assert_array_equal(prov[field], ref)
    np.testing.assert_array_equal(st.provenance(idx)["doc"], doc[idx])
    assert_stats(st.stats, stored(x, dtype).numpy())  # stats of the stored values, on-the-fly merge
    merge_store(tmp_path)
    st2 = ActivationStore.open(tmp_path)
    assert st2.manifest["count"] == 10_000 and torch.equal(st2.get(idx), st.get(idx))
    assert_stats(st2.stats, stored(x, dtype).numpy())  # from stats.safetensors
    assert st2.stats["mean"].dtype == torch.float64
    assert verify_store(tmp_path) == []
    (tmp_path / "stats.safetensors").unlink()
    assert verify_store(tmp_path) == ["stats.safetensors: missing, or its count differs from manifest.json"]


def test_two_ranks_merge_with_chan_exactly(tmp_path):
    parts = [data(3000, 32, seed=0), data(1700, 32, seed=1)]
    parts[1] = (parts[1][0] * 5 - 7, *parts[1][1:])  # very different means: a naive merge would be off
    for r, p in enumerate(parts):
        write(tmp_path, *p, shard_size=1000, chunk=400, rank=r, world=2)
    m = merge_store(tmp_path)
    assert [(s["rank"], s["count"]) for s in m["shards"]] == [(0, 1200), (0, 1200), (0, 600),
                                                              (1, 1200), (1, 500)]  # rank order
    assert (m["count"], m["world"], m["d_model"]) == (4700, 2, 32)
    st = ActivationStore.open(tmp_path)
    allx = torch.cat([parts[0][0], parts[1][0]])
    assert torch.equal(st.get(np.arange(4700)), allx)
    np.testing.assert_array_equal(st.provenance()["doc"], np.concatenate([parts[0][1], parts[1][1]]))
    assert_stats(st.stats, allx.numpy())


def test_merge_requires_every_rank(tmp_path):
    write(tmp_path, *data(100, 8), rank=0, world=2)
    assert len(ActivationStore.open(tmp_path)) == 100  # readable while rank 1 has not started
    with pytest.raises(DataError, match=r"manifest\.r01\.json"):
        merge_store(tmp_path)


def test_verify_reports_checksum_and_size(tmp_path):
    write(tmp_path, *data(3000, 16), shard_size=1000)
    assert verify_store(tmp_path) == []
    f = tmp_path / "acts-r00-000001.bin"
    raw = bytearray(f.read_bytes())
    raw[123] ^= 0xFF
    f.write_bytes(bytes(raw))
    assert verify_store(tmp_path) == ["acts-r00-000001.bin: sha256 mismatch (contents changed since written)"]
    p = tmp_path / "prov-r00-000002.bin"
    p.write_bytes(p.read_bytes()[:-18])
    problems = verify_store(tmp_path)
    assert problems == ["acts-r00-000001.bin: sha256 mismatch (contents changed since written)",
                        "prov-r00-000002.bin: 17982 bytes, but its count in the manifest needs 18000"]
    with pytest.raises(DataError, match="prov-r00-000002.bin"):
        ActivationStore.open(tmp_path)


def test_strays_ignored_then_deleted_and_cursor_resumes(tmp_path):
    x, doc, pos, tok, dom = data(5000, 16)
    w = write(tmp_path, x[:3000], doc, pos, tok, dom, shard_size=1000, chunk=1000, close=False)
    w.add(x[3000:3500], doc[:500], pos[:500], tok[:500], dom[:500])  # buffered, never committed
    w._lock_file.close()  # what kill -9 does to the lock
    (tmp_path / "acts-r00-000003.bin").write_bytes(b"x" * 1000)  # renamed but never listed
    (tmp_path / "prov-r00-000003.bin.tmp-4242").write_bytes(b"y" * 10)  # torn temp file
    st = ActivationStore.open(tmp_path)
    assert len(st) == 3000 and torch.equal(st.get(np.arange(3000)), x[:3000]) and verify_store(tmp_path) == []
    w2 = StoreWriter(tmp_path, meta(16), shard_size=1000, resume=True)
    assert w2.cursor == {"next": 3000}
    assert not (tmp_path / "acts-r00-000003.bin").exists() and not list(tmp_path.glob("*.tmp-*"))
    w2.add(x[3000:], doc[3000:], pos[3000:], tok[3000:], dom[3000:])
    w2.close({"next": 5000, "done": True})
    st = ActivationStore.open(tmp_path)
    assert torch.equal(st.get(np.arange(5000)), x) and verify_store(tmp_path) == []
    np.testing.assert_array_equal(st.provenance()["doc"], doc)
    assert_stats(st.stats, x.numpy())


KILL_SCRIPT = """
import os, signal, sys, numpy as np, torch
from lmlab.acts import store as S
calls = [0]
real = S._dump
def dump(arr, tmp):
    calls[0] += 1
    if calls[0] == 5:  # third shard's acts: half written, then SIGKILL
        with open(tmp, "wb") as f:
            f.write(arr.tobytes()[: arr.nbytes // 2]); f.flush()
        os.kill(os.getpid(), signal.SIGKILL)
    real(arr, tmp)
S._dump = dump
w = S.StoreWriter(sys.argv[1], {"model": "tiny", "layer": 3, "d_model": 8, "dtype": "bfloat16",
                                "domains": ["a"], "config": {}}, shard_size=100)
for i in range(5):
    w.add(torch.full((100, 8), float(i)), i, np.arange(100), 7, 0)
    w.commit({"step": i})
"""


def test_real_kill_9_mid_shard(tmp_path):
    r = subprocess.run([sys.executable, "-c", KILL_SCRIPT, str(tmp_path)], check=False, capture_output=True,
                       text=True)
    assert r.returncode == -9, r.stderr
    assert list(tmp_path.glob("acts-r00-000002.bin.tmp-*"))  # the torn temp file is there
    st = ActivationStore.open(tmp_path)
    assert len(st) == 200 and verify_store(tmp_path) == []
    assert st.get(np.array([0, 199])).tolist() == [[0.0] * 8, [1.0] * 8]
    w = StoreWriter(tmp_path, meta(8, "bfloat16") | {"domains": ["a"]}, shard_size=100, resume=True)
    assert w.cursor == {"step": 1} and not list(tmp_path.glob("*.tmp-*"))
    w.close({"step": 1, "done": True})


def test_write_error_keeps_previous_store(tmp_path, monkeypatch):
    x, doc, pos, tok, dom = data(3000, 16)
    w = write(tmp_path, x[:1000], doc, pos, tok, dom, shard_size=1000, close=False)
    real, calls = S._dump, [0]

    def full_disk(arr, tmp):
        calls[0] += 1
        if calls[0] == 4:  # the prov file of the second shard in this commit
            tmp.write_bytes(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        real(arr, tmp)

    monkeypatch.setattr(S, "_dump", full_disk)
    w.add(x[1000:3000], doc[1000:3000], pos[1000:3000], tok[1000:3000], dom[1000:3000])
    with pytest.raises(DataError) as e:
        w.commit({"next": 3000})
    msg = str(e.value)
    assert "\n" not in msg and "prov-r00-000002.bin" in msg and "No space left on device" in msg
    assert "free disk space" in e.value.hint
    st = ActivationStore.open(tmp_path)
    assert len(st) == 1000 and verify_store(tmp_path) == [] and w.cursor == {"next": 1000}
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".lock")) == [
        "acts-r00-000000.bin", "manifest.r00.json", "prov-r00-000000.bin"]  # no temp or unlisted files
    monkeypatch.setattr(S, "_dump", real)  # disk freed: the same writer can retry
    w.commit({"next": 3000})
    w.close({"next": 3000})
    assert torch.equal(ActivationStore.open(tmp_path).get(np.arange(3000)), x)


def test_existing_store_checks(tmp_path):
    write(tmp_path, *data(200, 16), shard_size=100)
    with pytest.raises(DataError, match="layer=3, not 5") as e:
        StoreWriter(tmp_path, meta(16, layer=5), resume=True)
    assert "another --out" in e.value.hint
    with pytest.raises(DataError, match="d_model"):
        StoreWriter(tmp_path, meta(32), resume=True)
    with pytest.raises(DataError, match="dtype"):
        StoreWriter(tmp_path, meta(16, "bfloat16"), resume=True)
    with pytest.raises(DataError, match="already holds"):
        StoreWriter(tmp_path, meta(16))
    with pytest.raises(DataError, match="2 processes|1 processes"):
        StoreWriter(tmp_path, meta(16), rank=0, world=2, resume=True)
    w = StoreWriter(tmp_path, meta(16), resume=True)
    with pytest.raises(DataError, match="another process"):
        StoreWriter(tmp_path, meta(16), resume=True)
    w.close(w.cursor)


def test_resume_after_merge_invalidates_merged_view(tmp_path):
    x, doc, pos, tok, dom = data(300, 8)
    write(tmp_path, x[:200], doc, pos, tok, dom, shard_size=100)
    merge_store(tmp_path)
    files = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    w = StoreWriter(tmp_path, meta(8), shard_size=100, resume=True)
    assert w.cursor == {"next": 200, "done": True}
    w.close(w.cursor)  # a rerun of a finished harvest ...
    merge_store(tmp_path)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == files  # ... touches nothing
    w = StoreWriter(tmp_path, meta(8), shard_size=100, resume=True)
    assert len(ActivationStore.open(tmp_path)) == 200  # the merged view stays valid until the next commit
    w.add(x[200:], doc[200:], pos[200:], tok[200:], dom[200:])
    w.close({"next": 300})
    assert not (tmp_path / "manifest.json").exists()
    assert json.loads((tmp_path / "manifest.r00.json").read_text())["count"] == 300
    merge_store(tmp_path)
    st = ActivationStore.open(tmp_path)
    assert torch.equal(st.get(np.arange(300)), x)
    assert_stats(st.stats, x.numpy())


def test_missing_store_and_empty_store(tmp_path):
    with pytest.raises(DataError, match="no activation store"):
        ActivationStore.open(tmp_path / "nope")
    w = StoreWriter(tmp_path / "s", meta(8))
    assert w.cursor is None and len(ActivationStore.open(tmp_path / "s")) == 0
    w.close({"done": True})
    assert merge_store(tmp_path / "s")["count"] == 0 and verify_store(tmp_path / "s") == []


def test_batches_cover_each_epoch_once_across_ranks(tmp_path):
    n, d, bs, world = 1000, 4, 64, 2
    x = torch.arange(n, dtype=torch.float32)[:, None].repeat(1, d)  # row i holds i: batches name their rows
    write(tmp_path, x, np.arange(n), np.zeros(n), np.zeros(n), np.zeros(n), shard_size=300, chunk=300)
    st = ActivationStore.open(tmp_path)
    assert len(st.shards) == 4  # batches gather across shard boundaries
    epochs = []
    for epoch in range(2):
        per_rank = []
        for rank in range(world):
            batches = list(st.batches(bs, seed=7, epoch=epoch, rank=rank, world=world))
            assert len(batches) == 7 and all(b.shape == (bs, d) and b.dtype == torch.float32 for b in batches)
            ids = torch.cat(batches)[:, 0].long().numpy()
            np.testing.assert_array_equal(ids, st.epoch_indices(bs, 7, epoch, rank, world))
            assert torch.equal(batches[3], st.get(ids[3 * bs:4 * bs]))
            per_rank.append(ids)
        assert not set(per_rank[0]) & set(per_rank[1])  # ranks disjoint
        union = np.concatenate(per_rank)
        assert len(np.unique(union)) == len(union) == n - n % (world * bs)  # no duplicates; cut < world*bs
        epochs.append(union)
        again = np.concatenate([st.epoch_indices(bs, 7, epoch, r, world) for r in range(world)])
        np.testing.assert_array_equal(again, union)  # deterministic in (seed, epoch)
    assert not np.array_equal(epochs[0], epochs[1])
    other_seed = np.concatenate([st.epoch_indices(bs, 8, 0, r, world) for r in range(world)])
    assert not np.array_equal(epochs[0], other_seed)


def test_batches_keep_all_without_drop_last_and_shuffle(tmp_path):
    n = 1001
    x = torch.arange(n, dtype=torch.float32)[:, None]
    write(tmp_path, x, np.arange(n), np.zeros(n), np.zeros(n), np.zeros(n), shard_size=300, chunk=300)
    st = ActivationStore.open(tmp_path)
    ids = [torch.cat(list(st.batches(64, rank=r, world=2, drop_last=False)))[:, 0].long().numpy()
           for r in range(2)]
    assert len(ids[0]) == len(ids[1]) == 500  # cut to a multiple of world: one row left out
    assert len(np.unique(np.concatenate(ids))) == 1000
    seq = list(st.batches(100, shuffle=False, drop_last=False))
    assert len(seq) == 11 and len(seq[-1]) == 1 and torch.equal(torch.cat(seq), x)

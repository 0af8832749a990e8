import numpy as np
import pytest

from lmlab.data.shards import HEADER_BYTES, eval_starts, open_shard, windows, write_shard, write_side
from lmlab.errors import DataError


def test_roundtrip_uint16_and_uint32(tmp_path):
    for vocab in (500, 100_000):
        toks = np.random.default_rng(0).integers(0, vocab, 1000)
        s = open_shard(write_shard(tmp_path / f"v{vocab}.bin", toks, vocab))
        assert s.tokens.dtype == (np.uint16 if vocab <= 65536 else np.uint32)
        assert np.array_equal(np.asarray(s.tokens), toks) and s.vocab_size == vocab and s.side is None


def test_side_channel_and_windows(tmp_path):
    toks = np.arange(100) % 50
    side = np.linspace(0, 1, 100)
    s = open_shard(write_shard(tmp_path / "a.bin", toks, 50, side=side))
    x, y, sx, sy = windows(s, np.array([0, 10]), 8)
    assert x.shape == (2, 8) and x[1, 0] == 10 and y[1, 0] == 11
    assert np.allclose(sx[1].numpy(), side[10:18], atol=1e-3) and np.allclose(sy[1].numpy(), side[11:19], atol=1e-3)
    assert eval_starts(s, 8, 5).tolist() == [0, 8, 16, 24, 32]


def test_rejects_bad_side_and_tokens(tmp_path):
    p = write_shard(tmp_path / "a.bin", np.arange(10), 10)
    with pytest.raises(DataError, match="NaN"):
        write_side(p, np.full(10, np.nan))
    with pytest.raises(DataError, match="one score per token"):
        write_side(p, np.zeros(9))
    with pytest.raises(DataError, match="outside"):
        write_shard(tmp_path / "b.bin", np.array([0, 10]), 10)
    assert not (tmp_path / "b.bin").exists() and not list(tmp_path.glob("*.tmp-*"))


@pytest.mark.parametrize("damage", ["magic", "truncate", "short"])
def test_corrupt_header_is_one_clear_error(tmp_path, damage):
    p = write_shard(tmp_path / "a.bin", np.arange(100), 100)
    raw = bytearray(p.read_bytes())
    if damage == "magic":
        raw[:8] = b"NOTASHRD"
    elif damage == "truncate":
        raw = raw[: HEADER_BYTES + 50]
    else:
        raw = raw[:10]
    p.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt shard") as e:
        open_shard(p)
    assert "lmlab data prepare" in str(e.value)


def test_missing_shard(tmp_path):
    with pytest.raises(DataError, match="missing shard"):
        open_shard(tmp_path / "nope.bin")

"""Harvest on the real SmolLM2: exact layer-L values, special tokens excluded, kill -9 + resume equality,
2-rank torchrun, and bad input. Packed vs sorted batching: test_packing.py."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from conftest import run_lmlab

from lmlab.acts.harvester import HarvestConfig, harvest
from lmlab.acts.store import ActivationStore, verify_store
from lmlab.errors import ConfigError, DataError, ModelNotFound

TEXTS = ["The heart pumps blood through the arteries and veins of the body.",
         "A fracture is a break in a bone. <|im_start|> Surgeons set it.",  # a special token inside the text
         "Python lists are mutable sequences; tuples are immutable.",
         "Webster's dictionary defines a lexicon as the vocabulary of a language.",
         "x"] * 6


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    p = tmp_path_factory.mktemp("corpus") / "docs.jsonl"
    p.write_text("".join(json.dumps({"text": t + f" ({i})", "domain": ["medical", "general"][i % 2]}) + "\n"
                         for i, t in enumerate(TEXTS)))
    return p


def _cfg(corpus, out, **kw):
    base = dict(model="smollm2", layer=7, tokens=10_000, out=str(out), corpus=str(corpus), seq_len=32, batch=4,
                block_docs=6, dtype="fp32", shard_size=64, device="cpu")
    return HarvestConfig(**{**base, **kw})


def test_store_holds_exact_layer_values_and_no_special_tokens(corpus, tmp_path):
    from lmlab.acts.positions import encode_docs
    from lmlab.data.corpus import iter_documents
    from lmlab.models import load_causal_lm

    m = harvest(_cfg(corpus, tmp_path / "s"), progress=False)
    store = ActivationStore.open(tmp_path / "s")
    assert verify_store(tmp_path / "s") == [] and len(store) == m["count"] > 100
    prov = store.provenance()
    model, tok = load_causal_lm("smollm2")
    assert not np.isin(prov["token"], tok.all_special_ids).any()
    docs = [d.text for d in iter_documents(str(corpus))]
    for doc_idx in (0, 1):  # recompute two documents alone with HF output_hidden_states
        ids = torch.tensor(encode_docs(tok, [docs[doc_idx]], 32))
        assert ids[0, 0] == tok.bos_token_id and ids[0, 1] != tok.bos_token_id  # BOS prepended (SmolLM2 adds none)
        with torch.inference_mode():
            hs = model(ids, output_hidden_states=True).hidden_states[8][0]
        rows = np.nonzero(prov["doc"] == doc_idx)[0]
        keep = ~np.isin(ids[0].numpy(), tok.all_special_ids)
        assert np.array_equal(prov["pos"][rows], np.nonzero(keep)[0])
        assert torch.allclose(store.get(rows), hs[torch.from_numpy(keep)], atol=1e-5)  # batch padding: fp noise only
        assert prov["pos"][rows][0] == 1  # BOS at position 0 carries the attention sink and is not stored
    assert doc_idx == 1 and keep.sum() < len(keep) - 1  # the <|im_start|> inside document 1 was excluded too
    assert store.get(np.arange(len(store))).norm(dim=1).max() < 2000  # no sink outliers (norm ~2e4) stored
    from lmlab.acts.harvester import doc_ids

    ids = doc_ids(store)
    assert ids[1] == ("docs.jsonl:2", "general") and set(ids) == set(np.unique(prov["doc"]).tolist())
    s = store.stats
    x = store.get(np.arange(len(store))).double()
    assert torch.allclose(s["mean"], x.mean(0), atol=1e-8)
    assert abs(s["mean_norm"] - x.norm(dim=1).mean().item()) < 1e-6


def test_tokens_cap_rerun_no_op_and_verify_cli(corpus, tmp_path):
    from dataclasses import asdict

    harvest(progress=False, **asdict(_cfg(corpus, tmp_path / "s", tokens=150)))  # the kwargs form of the API
    assert len(ActivationStore.open(tmp_path / "s")) == 150
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "s").iterdir()}
    harvest(_cfg(corpus, tmp_path / "s", tokens=150), progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "s").iterdir() if p.name in before} == before
    assert run_lmlab("acts", "verify", str(tmp_path / "s")).returncode == 0
    shard = sorted((tmp_path / "s").glob("acts-*.bin"))[0]
    raw = bytearray(shard.read_bytes())
    raw[5] ^= 0xFF
    shard.write_bytes(bytes(raw))
    r = run_lmlab("acts", "verify", str(tmp_path / "s"))
    assert r.returncode == 1 and shard.name in r.stdout


def test_kill_and_resume_gives_identical_store(tmp_path):
    args = ["acts", "harvest", "--layer", "5", "--tokens", "6000", "--seq-len", "64", "--batch", "8",
            "--dtype", "fp32", "--shard-size", "256", "--device", "cpu", "--no-progress"]
    run_lmlab(*args, "--out", str(tmp_path / "ref"), check=True)
    victim = tmp_path / "victim"
    p = subprocess.Popen([sys.executable, "-m", "lmlab", *args, "--out", str(victim)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    man = victim / "manifest.r00.json"  # kill once some rows are committed (and the run goes on)
    while time.time() < deadline and p.poll() is None and not (man.is_file() and json.loads(man.read_text())["count"]):
        time.sleep(0.02)
    assert p.poll() is None, "finished before it could be killed"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    partial = ActivationStore.open(victim)  # valid at the moment of the kill
    assert 0 < len(partial) < 6000
    run_lmlab(*args, "--out", str(victim), check=True)
    a, b = ActivationStore.open(tmp_path / "ref"), ActivationStore.open(victim)
    assert len(a) == len(b) == 6000 and verify_store(victim) == []
    assert torch.equal(a.get(np.arange(6000)), b.get(np.arange(6000)))  # packed batching (the default)
    assert np.array_equal(a.provenance(), b.provenance())
    pad = [json.loads((d / "manifest.json").read_text())["padding"] for d in (tmp_path / "ref", victim)]
    assert pad[0] == pad[1] and 0 < pad[0]["share"] < 0.1  # re-run blocks are not counted twice


@pytest.mark.dist
def test_two_ranks_write_one_store(corpus, tmp_path):
    harvest(_cfg(corpus, tmp_path / "one"), progress=False)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "lmlab",
           "acts", "harvest", "--layer", "7", "--tokens", "10000", "--corpus", str(corpus), "--seq-len", "32",
           "--batch", "4", "--dtype", "fp32", "--shard-size", "64", "--device", "cpu", "--no-progress",
           "--set", "block_docs=6", "--out", str(tmp_path / "two")]  # as _cfg: 5 blocks, shared by the 2 ranks
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr[-3000:]
    one, two = ActivationStore.open(tmp_path / "one"), ActivationStore.open(tmp_path / "two")
    assert verify_store(tmp_path / "two") == [] and len(one) == len(two)
    key = lambda s: np.lexsort((s.provenance()["pos"], s.provenance()["doc"]))  # noqa: E731
    i1, i2 = key(one), key(two)
    assert np.array_equal(one.provenance()[i1], two.provenance()[i2])
    a, b = one.get(i1), two.get(i2)  # ranks run 1 thread each: GEMM blocking differs, so fp32 noise only
    assert (a - b).abs().max() <= 1e-5 * a.abs().max()
    assert torch.allclose(one.stats["mean"], two.stats["mean"], rtol=1e-5, atol=1e-5)
    pad = [json.loads((tmp_path / d / "manifest.json").read_text())["padding"] for d in ("one", "two")]
    assert pad[0] == pad[1]  # blocks are packed alone, whichever rank runs them


def test_bad_input(corpus, tmp_path):
    with pytest.raises(ConfigError, match="out of range"):
        harvest(_cfg(corpus, tmp_path / "a", layer=30), progress=False)
    with pytest.raises(ModelNotFound):
        harvest(_cfg(corpus, tmp_path / "b", model=str(tmp_path / "no-model")), progress=False)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(DataError):
        harvest(_cfg(empty, tmp_path / "c"), progress=False)
    harvest(_cfg(corpus, tmp_path / "d", tokens=50), progress=False)
    with pytest.raises(DataError, match="layer"):
        harvest(_cfg(corpus, tmp_path / "d", tokens=50, layer=8), progress=False)
    assert verify_store(tmp_path / "d") == []
    r = run_lmlab("acts", "harvest", "--layer", "99", "--out", str(tmp_path / "e"), "--tokens", "10")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "0..29" in r.stderr


# ---- compute dtype: "auto" picks bf16 only where the hardware runs it (dist.native_bf16) -------------------------
@pytest.mark.parametrize("avx512_bf16, amx, want", [(False, False, "fp32"), (True, False, "bf16"),
                                                    (False, True, "bf16")])
def test_auto_dtype_follows_the_cpu_capability(monkeypatch, avx512_bf16, amx, want):
    from lmlab import dist

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)
    assert dist.compute_dtype("auto", torch.device("cpu")) == want
    assert dist.compute_dtype("fp32", torch.device("cpu")) == "fp32"  # an explicit choice is kept


def test_explicit_bf16_on_an_emulating_cpu_runs_with_a_note(monkeypatch, capsys):
    from lmlab import dist

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert dist.compute_dtype("bf16", torch.device("cpu")) == "bf16"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "emulated" in err[0] and "dtype=auto" in err[0]


def test_fp32_compute_bf16_store_is_the_rounded_fp32_harvest(corpus, tmp_path, monkeypatch):
    """dtype=auto on a CPU without native bf16: the model runs in fp32 and the store keeps bf16 rows, which are
    exactly the fp32 harvest's values rounded to nearest even; the manifest records both dtypes, and a resume
    that would compute in another dtype is refused in one line."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    harvest(_cfg(corpus, tmp_path / "f32", tokens=300), progress=False)
    m = harvest(_cfg(corpus, tmp_path / "auto", tokens=300, dtype="auto", store_dtype="auto"), progress=False)
    assert m["meta"]["dtype"] == "bfloat16" and m["meta"]["compute_dtype"] == "fp32"
    assert m["meta"]["config"]["dtype"] == "fp32" and m["meta"]["config"]["store_dtype"] == "bf16"
    ref, got = ActivationStore.open(tmp_path / "f32"), ActivationStore.open(tmp_path / "auto")
    rows = np.arange(len(ref))
    assert len(got) == len(ref) and got.dtype == "bfloat16"
    assert torch.equal(got.get(rows), ref.get(rows).to(torch.bfloat16).float())
    with pytest.raises(DataError, match="compute_dtype='fp32', not 'bf16'") as e:
        harvest(_cfg(corpus, tmp_path / "auto", tokens=600, dtype="bf16", store_dtype="bf16"), progress=False)
    assert "--dtype fp32" in str(e.value)

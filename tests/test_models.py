"""lmlab.models: the embedded SmolLM2 (real weights, no mocks), its cache, and spec resolution.

The first run dequantises the GGUF into the lmlab cache (~20 s); later runs reuse it. Nothing here may
reach a model hub: hub-id tests force offline mode and block sockets.
"""

import json
import socket
import threading
import time

import pytest
import torch

import lmlab.models as M
from lmlab.errors import ModelNotFound

PROMPT = "The capital of France is"


@pytest.fixture(scope="module")
def smollm2():
    return M.load_causal_lm("smollm2")


@pytest.fixture
def no_hub(monkeypatch):
    """Offline mode as transformers sees it, plus a socket that refuses to connect (belt and braces)."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_greedy_continuation_names_paris(smollm2):
    model, tok = smollm2
    ids = tok(PROMPT, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    text = tok.decode(out[0, ids.input_ids.shape[1] :], skip_special_tokens=True)
    assert "Paris" in text, text


def test_second_load_comes_from_plain_cache(smollm2):
    cache = M.smollm2_dir()
    assert (cache / "model.safetensors").is_file() and (cache / "tokenizer.json").is_file()
    config = json.loads((cache / "config.json").read_text())
    assert "quantization_config" not in config
    assert (config["num_hidden_layers"], config["hidden_size"], config["vocab_size"]) == (30, 576, 49152)

    start = time.perf_counter()
    model, tok = M.load_causal_lm("smollm2")
    assert time.perf_counter() - start < 2.0
    assert model.name_or_path == str(cache)  # loaded from the cache dir, not the GGUF
    assert not getattr(model, "is_quantized", False) and not model.training
    n_params = sum(p.numel() for p in model.parameters())  # tied lm_head counted once
    assert abs(n_params - 134.5e6) < 0.1e6, n_params
    assert len(tok) == 49152


def test_cached_logits_equal_fresh_gguf_dequantisation(smollm2, no_hub):
    # The documented transformers recipe, independent of lmlab's rebuild-and-save path.
    from transformers import AutoModelForCausalLM

    gguf = M.smollm2_gguf_path()
    fresh = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    model, tok = smollm2
    ids = tok(PROMPT, return_tensors="pt")
    with torch.no_grad():
        a, b = model(**ids).logits, fresh.eval()(**ids).logits
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_local_hf_dir_spec_loads_the_same_model(smollm2):
    model, tok = M.load_causal_lm(str(M.smollm2_dir()), dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16
    assert tok(PROMPT).input_ids == smollm2[1](PROMPT).input_ids


def test_unknown_hub_id_offline_is_model_not_found(no_hub):
    with pytest.raises(ModelNotFound, match="unknown model 'no/such-model'"):
        M.load_causal_lm("no/such-model")


@pytest.mark.parametrize("spec", ["./missing-dir", "/nonexistent/lmlab-model", "~/no-such-lmlab-model"])
def test_missing_local_path_is_model_not_found(spec, no_hub):
    with pytest.raises(ModelNotFound, match="no model directory") as err:
        M.load_causal_lm(spec)
    assert spec in str(err.value)


def test_partial_path_is_not_sent_to_the_hub(tmp_path, monkeypatch, no_hub):
    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFound, match="no model directory at 'runs/typo'"):
        M.load_causal_lm("runs/typo")


def test_dir_without_config_is_model_not_found(tmp_path):
    with pytest.raises(ModelNotFound, match="no config.json"):
        M.load_causal_lm(str(tmp_path))


def test_cache_root_follows_lmlab_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LMLAB_CACHE", str(tmp_path))
    assert M._cache_root() == tmp_path


# --- cache building, with the 20 s dequantisation replaced by a stub ---------------------------------


@pytest.fixture
def stub_build(tmp_path, monkeypatch):
    """Point the cache at tmp_path and count builds; each build writes placeholder files slowly."""
    calls = []

    def write(gguf, out):
        calls.append(out)
        out.mkdir()
        time.sleep(0.3)  # long enough for a second caller to arrive mid-build
        for name in ("config.json", "model.safetensors", "tokenizer.json"):
            (out / name).write_text("{}")

    monkeypatch.setattr(M, "_cache_root", lambda: tmp_path)
    monkeypatch.setattr(M, "_write_smollm2", write)
    return calls


def test_concurrent_first_use_builds_once(stub_build, capsys):
    results = []
    threads = [threading.Thread(target=lambda: results.append(M.smollm2_dir())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stub_build) == 1 and len(set(results)) == 1
    final = results[0]
    assert M._is_complete(final)
    assert not list(final.parent.glob("*.tmp-*"))
    assert capsys.readouterr().err.count("dequantising SmolLM2-135M GGUF once") == 1


def test_incomplete_cache_and_stale_temp_dir_are_replaced(stub_build, tmp_path):
    final = tmp_path / "models" / M.SMOLLM2_CACHE_NAME
    final.mkdir(parents=True)
    (final / "config.json").write_text("{}")  # e.g. someone deleted the weights by hand
    stale = final.with_name(f"{final.name}.tmp-99999999")  # a builder killed mid-way
    stale.mkdir()
    assert M.smollm2_dir() == final
    assert len(stub_build) == 1 and M._is_complete(final) and not stale.exists()
    source = json.loads((final / "lmlab_source.json").read_text())
    assert source["gguf_bytes"] == M.smollm2_gguf_path().stat().st_size


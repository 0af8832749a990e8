"""SAE evaluation on the real SmolLM2: known answers for the LM splice (an identity "SAE" recovers all CE and KL),
and a trained tiny SAE through `lmlab sae eval`."""

import json

import numpy as np
import pytest
import torch

from lmlab.acts.store import ActivationStore


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from lmlab.acts.harvester import HarvestConfig, harvest

    root = tmp_path_factory.mktemp("sae_eval")
    harvest(HarvestConfig(layer=7, tokens=4000, out=str(root / "s"), seq_len=64, batch=8, dtype="fp32",
                          device="cpu"), progress=False)
    return root / "s"


class _Identity:
    """encode/decode that reproduce the input exactly: every LM figure has a known value."""

    class cfg:
        n_latents, d_in, k = 576, 576, 576

    def encode(self, x):
        return x

    def decode(self, f):
        return f


def test_identity_recovers_everything_and_known_activation_metrics(store):
    from lmlab.sae.evaluate import activation_metrics, lm_metrics

    st = ActivationStore.open(store)
    out = lm_metrics(_Identity(), st, n_docs=4, seq_len=32, batch=4)
    assert out["delta_ce"] == pytest.approx(0.0, abs=1e-6) and out["kl_sae"] == pytest.approx(0.0, abs=1e-6)
    assert out["ce_recovered_zero"] == pytest.approx(1.0, abs=1e-5) and out["kl_score"] == pytest.approx(1.0, abs=1e-5)
    assert out["ce_zero"] > out["ce_clean"] + 0.5 and out["ci95"]["delta_ce"][0] == pytest.approx(0.0, abs=1e-6)
    x = st.get(np.arange(500))
    act = activation_metrics(_Identity(), x)
    assert act["fvu"] == pytest.approx(0.0, abs=1e-9) and act["rel_bias"] == pytest.approx(1.0, abs=1e-6)
    nz = float((x > 0).sum()) / len(x)  # the identity "fires" on every positive coordinate
    assert act["l0"] == pytest.approx(nz)


def test_cli_eval_of_a_trained_sae(store, tmp_path):
    from conftest import run_lmlab

    run_lmlab("sae", "train", "--store", str(store), "--out", str(tmp_path / "r"), "--no-progress", "--set",
              "max_steps=40", "--set", "batch_size=256", "--set", "init_rows=1000", "--set", "eval_rows=300",
              "--set", 'device="cpu"', check=True)
    r = run_lmlab("sae", "eval", "--sae", str(tmp_path / "r"), "--n-docs", "4", "--seq-len", "32", "--json",
                  "--plot", str(tmp_path / "d.png"), check=True)
    out = json.loads(r.stdout)
    assert 0 < out["fvu"] < 1 and out["l0"] <= 16 + 1e-9 and (tmp_path / "d.png").stat().st_size > 1000
    lm = out["lm"]
    assert lm["ce_clean"] < lm["ce_sae"] < lm["ce_zero"] and -0.5 < lm["ce_recovered_zero"] <= 1.0
    lo, hi = lm["ci95"]["delta_ce"]
    assert lo <= lm["delta_ce"] <= hi
    bad = run_lmlab("sae", "eval", "--sae", str(tmp_path / "nowhere"), "--store", str(store))
    assert bad.returncode == 2 and "no SAE at" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert torch.isfinite(torch.tensor(lm["kl_sae"]))


def test_cli_label_on_smollm2(store, tmp_path):
    from conftest import run_lmlab

    run_lmlab("sae", "train", "--store", str(store), "--out", str(tmp_path / "r"), "--no-progress", "--set",
              "max_steps=30", "--set", "batch_size=256", "--set", "init_rows=1000", "--set", "eval_rows=300",
              "--set", 'device="cpu"', check=True)
    from lmlab.data.corpus import iter_documents
    from lmlab.data.tokenizer import train_tokenizer

    tok_json = train_tokenizer((d.text for _, d in zip(range(300), iter_documents(None))), tmp_path / "tok.json", 512)
    r = run_lmlab("sae", "label", "--sae", str(tmp_path / "r"), "--out", str(tmp_path / "lab"), "--docs", "10",
                  "--seq-len", "32", "--latents", "4", "--tokenizer", str(tok_json), check=True)
    summary = json.loads(r.stdout)
    from lmlab.data.shards import open_shard

    shard = open_shard(tmp_path / "lab" / "labels.bin")  # the labels in another tokenizer, as a side channel
    assert summary["shard"]["n_tokens"] == len(shard) > 20 * 5 and shard.vocab_size == 512
    assert set(np.unique(np.asarray(shard.side)).tolist()) <= {0.0, 1.0}
    assert len(summary["choice"]["latents"]) == 4 and len(summary["choice"]["heldout_auc"]) == 4
    q = summary["quality"]
    assert 0 <= q["precision"] <= 1 and q["n_tokens"] > 100
    rows = [json.loads(line) for line in (tmp_path / "lab" / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 20 and {row["domain"] == "medical" for row in rows} == {True, False}
    from lmlab.models import load_causal_lm

    _, tok = load_causal_lm("smollm2")
    for row in rows:
        assert len(row["labels"]) == len(row["ids"]) == len(row["spans"])
        assert not any(y for t, y in zip(row["ids"], row["labels"]) if t in tok.all_special_ids)  # BOS never
    n_pos = sum(sum(row["labels"]) for row in rows)
    html = (tmp_path / "lab" / "labels.html").read_text()
    assert html.count("class=doc") == 20 and ("<mark>" in html) == (n_pos > 0)
    r = run_lmlab("sae", "label", "--sae", str(tmp_path / "r"), "--out", str(tmp_path / "pages"), "--docs", "10",
                  "--seq-len", "32", "--latents", "4", "--apply-to", "embedded-pages", "--apply-docs", "6",
                  "--apply-seq-len", "64", check=True)
    applied = json.loads(r.stdout)["applied"]  # the choice made on entries labels mixed-domain pages
    assert applied["n_docs"] == 6 and 0 <= applied["agreement"]["precision"] <= 1
    assert sum(applied["agreement"]["tokens"].values()) >= 6 * 50
    rows = [json.loads(line) for line in (tmp_path / "pages" / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 6 and all(len(row["labels"]) == len(row["ids"]) <= 64 for row in rows)
    assert any(len(row.get("entry_spans") or []) > 1 for row in rows)
    bad = run_lmlab("sae", "label", "--sae", str(tmp_path / "r"), "--out", str(tmp_path / "bad"), "--domain", "law")
    assert bad.returncode == 2 and "no domain 'law'" in bad.stderr and not (tmp_path / "bad").exists()
    bad = run_lmlab("sae", "label", "--sae", str(tmp_path / "r"), "--out", str(tmp_path / "bad"), "--tokenizer",
                    str(tmp_path / "no" / "tokenizer.json"))
    assert bad.returncode == 2 and "does not exist" in bad.stderr and not (tmp_path / "bad").exists()

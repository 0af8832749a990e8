"""The distilled classifier's parts: biLM reversal alignment (position t sees exactly x<=t through the forward
half and x>=t through the backward half; the released variant does not), reversed training windows, the L-BFGS
probe and the F1-optimal threshold on planted cases."""

import numpy as np
import pytest
import torch

from lmlab.filtering.bilm import BiLM, bilm_states
from lmlab.filtering.probe import balance, f1_threshold, fit_logistic, metrics, train_probe
from lmlab.lm.model import GPT, ModelConfig


def _gpt(seed):
    torch.manual_seed(seed)
    return GPT(ModelConfig(vocab_size=50, d_model=32, n_layer=2, n_head=2, max_seq_len=16)).eval()


@pytest.mark.parametrize("j", [0, 5, 11])
def test_bilm_position_t_sees_left_through_fwd_and_right_through_bwd(j):
    """Planted dependency: change token j; the forward half's features change exactly at t >= j, the backward
    half's exactly at t <= j. The released variant's second half changes at t >= j (it never sees the right)."""
    bilm = BiLM(_gpt(0), _gpt(1), None)
    x = torch.randint(0, 50, (1, 12), generator=torch.Generator().manual_seed(3))
    x2 = x.clone()
    x2[0, j] = (x[0, j] + 7) % 50
    d = 32
    for variant in ("bilm", "released"):
        a, b = bilm_states(bilm, x, 1, variant)[0], bilm_states(bilm, x2, 1, variant)[0]
        changed = (a - b).abs().amax(-1) > 1e-6  # (T, 2d) -> per position, per half below
        fwd = (a[:, :d] - b[:, :d]).abs().amax(-1) > 1e-6
        bwd = (a[:, d:] - b[:, d:]).abs().amax(-1) > 1e-6
        t = torch.arange(12)
        assert torch.equal(fwd, t >= j)
        assert torch.equal(bwd, t <= j if variant == "bilm" else t >= j), variant
        assert changed.any()
    assert bilm_states(bilm, x, 1, "ltr").shape == (1, 12, d)
    assert bilm_states(bilm, x, 0, "bilm").shape == (1, 12, 2 * d)


def test_reversed_windows_read_the_stream_backwards(tmp_path):
    from lmlab.data.shards import open_shard, windows, write_shard

    write_shard(tmp_path / "s.bin", np.arange(20), 100, side=np.arange(20) / 100)
    sh = open_shard(tmp_path / "s.bin")
    x, y, sx, sy = windows(sh, np.array([3]), 4, reverse=True)
    assert x.tolist() == [[7, 6, 5, 4]] and y.tolist() == [[6, 5, 4, 3]]
    assert np.allclose(sx.numpy(), [[0.07, 0.06, 0.05, 0.04]], atol=1e-3)
    x, y, _, _ = windows(sh, np.array([3]), 4)
    assert x.tolist() == [[3, 4, 5, 6]] and y.tolist() == [[4, 5, 6, 7]]


def test_f1_threshold_known_answer():
    p = np.array([0.9, 0.8, 0.7, 0.6, 0.2, 0.1])
    y = np.array([1, 1, 0, 1, 0, 0])
    thr, f1 = f1_threshold(p, y)  # cut after 0.6: tp 3, fp 1 -> F1 = 6 / 7
    assert thr == 0.6 and f1 == pytest.approx(6 / 7)
    m = metrics(p, y, thr)
    assert m["precision"] == 0.75 and m["recall"] == 1.0 and m["auroc"] == pytest.approx(8 / 9)
    thr, _ = f1_threshold(np.array([0.5, 0.5, 0.1]), np.array([1, 0, 0]))  # ties are never split
    assert thr == 0.5


def test_probe_recovers_a_planted_direction_with_imbalance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6000, 20, generator=g) * torch.linspace(0.5, 3, 20) + 4.0  # unscaled, off-centre features
    v = torch.zeros(20)
    v[[2, 7]] = torch.tensor([1.0, -0.5])
    y = ((x - 4.0) @ v > 1.2).long().numpy()  # ~15% positive
    assert 0.05 < y.mean() < 0.3
    idx = balance(y)
    assert (y[idx] == 1).sum() == (y[idx] == 0).sum() == (y == 1).sum()
    probe, info = train_probe(x[:4000], y[:4000], x[4000:], y[4000:])
    p = probe.prob(x[4000:]).numpy()
    assert info["val"]["auroc"] > 0.99 and info["val"]["f1"] > 0.9
    w = probe.w / probe.w.norm()
    assert w[2] > 0.8 and w[7] < -0.3 and w[[i for i in range(20) if i not in (2, 7)]].abs().max() < 0.1
    assert metrics(p, y[4000:], info["threshold"])["f1"] == pytest.approx(info["val"]["f1"])


def test_fit_logistic_matches_closed_form_gradient_zero():
    """At the optimum the regularised gradient vanishes (checked in the standardised space it is fitted in)."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(500, 5, generator=g)
    y = (torch.rand(500, generator=g) < torch.sigmoid(x[:, 0] * 2)).long()
    pr = fit_logistic(x, y, l2=0.1)
    mu, sd = x.double().mean(0), x.double().std(0)
    w_std = pr.w.double() * sd
    z = (x.double() - mu) / sd
    p = torch.sigmoid(z @ w_std + pr.b + (pr.w.double() * mu).sum())
    grad = z.T @ (p - y.double()) / 500 + 0.1 * w_std
    assert grad.abs().max() < 1e-5


@pytest.fixture(scope="module")
def planted(tiny_data, tmp_path_factory):
    """Two tiny LMs (left-to-right and reversed) on a real prepared dataset, SAE-style labels planted on
    "medical" words and carried into the dataset's tokenizer, and the classifier trained on them."""
    import json

    from lmlab.config import apply_overrides, get_preset
    from lmlab.data.tokenizer import Tokenizer
    from lmlab.filtering.classifier import train_classifier
    from lmlab.lm.train import train
    from lmlab.sae.label import label_shard

    root = tmp_path_factory.mktemp("planted")
    for name, rev in (("fwd", "false"), ("bwd", "true")):
        cfg = apply_overrides(get_preset("lm", "tiny"), [f'data="{tiny_data}"', "max_steps=6", f"reverse={rev}",
                                                          "eval_every=6", "ckpt_every=0"])
        train(cfg, root / name, progress=False)
    rng = np.random.default_rng(0)
    # planted "medical" words share no letter with the others, so no BPE piece is in both kinds
    med, other = ["qzx", "jqz", "xxk", "zjkq"], ["house", "river", "music", "table", "green", "plant"]
    docs = []
    for i in range(200):
        words = list(rng.choice(other, 30)) + (list(rng.choice(med, 6)) if i % 2 else [])
        rng.shuffle(words)
        text, spans, labels, pos = " ".join(words), [], [], 0
        for w in words:
            spans.append((pos, pos + len(w)))
            labels.append(w in med)
            pos += len(w) + 1
        dom = "medical" if i % 2 else "general"
        docs.append({"id": str(i), "domain": dom, "text": text, "spans": spans, "labels": labels,
                     "entry_spans": [[0, len(text), dom]]})
    lab = root / "labels"
    lab.mkdir()
    label_shard(docs, Tokenizer.load(tiny_data), lab / "labels.bin")
    (lab / "labels.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    info = train_classifier(lab, root / "fwd", root / "bwd", root / "cls", layers=[0, 2], variants=("bilm", "ltr"))
    return root, info


def test_classifier_end_to_end_on_planted_labels(planted):
    """Every (variant, layer) probe is fitted, the embedding layer finds the planted words, the saved classifier
    names its tokenizer, and the document classifier separates documents with medical words."""
    import json

    root, info = planted
    assert [(r["variant"], r["layer"]) for r in info["table"]] == [("bilm", 0), ("bilm", 2), ("ltr", 0), ("ltr", 2)]
    emb = info["table"][0]
    assert emb["test"]["f1"] > 0.95 and emb["test"]["auroc"] > 0.99
    assert info["doc"]["test"]["auroc"] > 0.9 and 0.05 < info["label_positive_rate"] < 0.3
    assert [(q["b"], q["layer"]) for q in info["paired"]] == [("ltr", 0), ("ltr", 2)]
    for q in info["paired"]:
        assert q["f1"]["ci95"][0] <= q["f1"]["diff"] <= q["f1"]["ci95"][1]
    saved = json.loads((root / "cls" / "classifier.json").read_text())
    assert saved["tokenizer_sha256"] and (root / "cls" / "probe.safetensors").is_file()


def test_label_dataset_resumes_exactly(planted, tiny_data, tmp_path):
    """Corpus labelling: a run stopped after two blocks and resumed writes the same side channel as an
    uninterrupted run; another tokenizer's classifier is refused."""
    import json
    import shutil

    from lmlab.data.shards import open_shard
    from lmlab.errors import DataError
    from lmlab.filtering.label import label_dataset

    root, _ = planted
    a, b = tmp_path / "data_a", tmp_path / "data_b"
    for d in (a, b):
        shutil.copytree(tiny_data, d)
    first = label_dataset(root / "cls", a, block_docs=200, progress=False, stop_after_blocks=2)
    assert first == {"done": False, "docs_done": 400, "n_docs": first["n_docs"]} and not (a / "train.side").exists()
    done = label_dataset(root / "cls", a, block_docs=200, progress=False)
    ref = label_dataset(root / "cls", b, block_docs=200, progress=False)
    sa, sb = open_shard(a / "train.bin"), open_shard(b / "train.bin")
    assert np.array_equal(np.asarray(sa.side), np.asarray(sb.side)) and done == ref
    assert 0 <= done["flagged_token_rate"] < 0.5 and not list(a.glob(".train*"))
    assert len(np.load(a / "train.docflags.npy")) == done["n_docs"]
    bad = tmp_path / "cls_other"
    shutil.copytree(root / "cls", bad)
    info = json.loads((bad / "classifier.json").read_text())
    (bad / "classifier.json").write_text(json.dumps({**info, "tokenizer_sha256": "0" * 64}))
    with pytest.raises(DataError, match="built for another tokenizer"):
        label_dataset(bad, b, progress=False)


def test_filter_sweep_four_series_tiny(planted, tiny_data, tmp_path):
    """Each series on a tiny run: document filtering trains on fewer documents, masking and removal take more
    steps under the loss-bearing-token budget and train on fewer loss tokens; a re-run resumes nothing new."""
    import shutil

    from lmlab.data.shards import open_shard
    from lmlab.errors import ConfigError
    from lmlab.filtering.label import label_dataset
    from lmlab.filtering.sweep import FilterSweepConfig, sweep

    root, _ = planted
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    label_dataset(root / "cls", data, block_docs=500, progress=False)
    side = np.asarray(open_shard(data / "train.bin").side, dtype=np.float32)
    thr = float(np.quantile(side, 0.9))  # ~10% of tokens flagged
    dthr = float(np.median(np.load(data / "train.docflags.npy")))
    cfg = FilterSweepConfig(data=str(data), sizes=["16x1"], tokens_per_param=2.0, threshold=thr, doc_threshold=dthr,
                            seq_len=32, batch_size=8, evals_per_run=2, eval_windows=4, device="cpu",
                            domains=["medical", "general"])
    res = sweep(cfg, tmp_path / "sw", progress=False)
    rows = {r["series"]: r for r in res["runs"]}
    assert set(rows) == {"baseline", "document", "mask", "removal"}
    b, m, rm = rows["baseline"], rows["mask"], rows["removal"]
    assert 0.03 < m["masked_share"] < 0.3 and m["steps"] > b["steps"] and m["d_nominal"] == b["d_nominal"]
    assert m["loss_bearing_tokens"] < m["tokens_processed"] and rm["steps"] == m["steps"]
    assert m["loss_bearing_tokens"] == pytest.approx(b["loss_bearing_tokens"], rel=0.1)  # equal loss-token budgets
    assert all(np.isfinite(r["loss_medical"]) for r in rows.values())
    doc_tokens = len(open_shard(tmp_path / "sw" / "data_document" / "train.bin"))
    assert 0 < doc_tokens < 0.8 * len(side)
    assert sweep(cfg, tmp_path / "sw", progress=False)["runs"] == res["runs"]  # every run finished: reused
    with pytest.raises(ConfigError, match="outside"):
        FilterSweepConfig(data=str(data), threshold=1.5)


def test_document_bootstrap_interval_covers_the_estimate():
    from lmlab.filtering.probe import metrics_ci

    rng = np.random.default_rng(0)
    y = (rng.random(4000) < 0.2).astype(int)
    p = np.clip(y * 0.3 + rng.random(4000) * 0.7, 0, 1)
    m = metrics(p, y, 0.5)
    few = metrics_ci(p, y, np.repeat(np.arange(10), 400), 0.5, n_boot=300)  # 10 big documents
    many = metrics_ci(p, y, np.arange(4000), 0.5, n_boot=300)  # every token its own document
    for k in ("f1", "auroc"):
        assert few[k][0] <= m[k] <= few[k][1] and many[k][0] <= m[k] <= many[k][1]
    assert many["f1"][1] - many["f1"][0] < 0.1


def test_paired_difference_known_answers():
    """A classifier against itself differs by exactly 0; a perfect one against a coin beats it with an interval
    above 0; the pairing makes the difference's interval narrower than either classifier's own."""
    from lmlab.filtering.probe import metrics_ci, paired_diff

    rng = np.random.default_rng(1)
    y = (rng.random(3000) < 0.2).astype(int)
    group = np.repeat(np.arange(60), 50)
    noisy = np.clip(y * 0.4 + rng.random(3000) * 0.6, 0, 1)
    same = paired_diff(noisy, 0.5, noisy, 0.5, y, group, n_boot=200)
    assert same["f1"] == {"diff": 0.0, "ci95": [0.0, 0.0]}
    better = paired_diff(y.astype(float), 0.5, rng.random(3000), 0.5, y, group, n_boot=200)
    assert better["f1"]["ci95"][0] > 0.5 and better["auroc"]["ci95"][0] > 0.4
    close = np.clip(noisy + rng.normal(0, 0.02, 3000), 0, 1)
    d = paired_diff(noisy, 0.5, close, 0.5, y, group, n_boot=200)["auroc"]["ci95"]
    own = metrics_ci(noisy, y, group, 0.5, n_boot=200)["auroc"]
    assert d[1] - d[0] < (own[1] - own[0]) / 2
    # a test split without positives (the quick demo's tiny corpus): no resample is defined, so no interval
    none = paired_diff(noisy, 0.5, close, 0.5, np.zeros(3000, int), group, n_boot=20)
    assert none["f1"]["ci95"] is None and none["auroc"]["ci95"] is None

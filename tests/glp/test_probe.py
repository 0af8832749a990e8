"""1-D probing (issue 5): AUC and the 1-D logistic identity, planted-signal recovery, meta-neuron extraction,
bootstrap CI coverage on a known distribution, task building, bad input, the CLI on SmolLM2."""

import json

import numpy as np
import pytest
import torch
from conftest import run_lmlab
from test_steer import smol_glp  # noqa: F401  (session fixture: small real store + tiny GLP)

from lmlab.glp import probe as P
from lmlab.glp.net import GLP, Denoiser, DenoiserConfig, Normalizer
from lmlab.glp.stats import bootstrap_ci, mean_ci


def test_auc_columns_known_answers():
    y = np.array([0, 0, 1, 1])
    x = np.array([[0.1, 0.9, 1.0], [0.2, 0.8, 1.0], [0.3, 0.2, 1.0], [0.4, 0.1, 1.0]])
    assert np.allclose(P.auc_columns(x, y), [1.0, 0.0, 0.5])
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(60, 1)), rng.integers(0, 2, 60)
    pairs = np.mean([(a > b) + 0.5 * (a == b) for a in x[y == 1, 0] for b in x[y == 0, 0]])
    assert P.auc_columns(x, y)[0] == pytest.approx(pairs)


def test_one_d_logistic_regression_auc_equals_signed_feature_auc():
    """The identity probe.py relies on: a fitted 1-D L2 logistic regression ranks like sign(m1 - m0) * x."""
    rng = np.random.default_rng(1)
    for shift in (0.7, -0.4, 0.05):
        y = rng.integers(0, 2, 300)
        x = rng.normal(size=300) + shift * y + 0.3 * rng.standard_t(2, 300)
        xs = torch.tensor((x - x.mean()) / x.std(), dtype=torch.float32)
        w, b = torch.zeros(1, requires_grad=True), torch.zeros(1, requires_grad=True)
        opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        yt = torch.tensor(y, dtype=torch.float32)

        def closure(opt=opt, xs=xs, w=w, b=b, yt=yt):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(xs * w + b, yt)
            loss = loss + 0.5 * (w * w).sum()  # C = 1-ish L2, as in the paper's grid
            loss.backward()
            return loss

        opt.step(closure)
        pred = (xs * w + b).detach().numpy()
        sign = np.sign(x[y == 1].mean() - x[y == 0].mean())
        assert P.auc_columns(pred[:, None], y)[0] == pytest.approx(P.auc_columns((sign * x)[:, None], y)[0])


def test_recovers_a_planted_single_neuron():
    rng = np.random.default_rng(2)
    n, f = 800, 3000
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, f)) * rng.uniform(0.5, 3, f)  # unequal scales, like raw activations
    x[:, 1234] = -1.5 * y + rng.normal(size=n)  # the one informative neuron (negative direction)
    group = np.arange(n) // 4  # 4 examples per "document"
    test = P.split_by_doc(group, 0.3)
    r = P.one_d_probe(x[~test], y[~test], group[~test], x[test], y[test], top_k=512, folds=5)
    assert r["feature"] == 1234 and r["test_auc"] > 0.8 and r["cv_auc"] > 0.8


def test_pipeline_recovers_planted_neuron_through_pooling_and_split():
    """Task -> per-document mean pooling -> split by document -> 1-D probe, with a planted feature."""
    rng = np.random.default_rng(3)
    n_docs, per = 200, 6
    doc = np.repeat(np.arange(n_docs), per)
    y_doc = rng.integers(0, 2, n_docs)
    feats = torch.tensor(rng.normal(size=(n_docs * per, 700)), dtype=torch.float32)
    feats[:, 77] += torch.tensor(1.2 * y_doc[doc], dtype=torch.float32)
    task = P.Task("planted", "doc", np.arange(n_docs), y_doc, np.arange(n_docs))
    cfg = P.ProbeConfig(n_boot=100)
    res = P.probe_task(task, {"meta": feats, "raw": feats[:, :50]}, doc, cfg)
    assert res["meta"]["feature"] == 77 and res["meta"]["test_auc"] > 0.85
    assert res["raw"]["test_auc"] < 0.75  # the planted neuron is not among the first 50 columns
    assert res["meta"]["dense_test_auc"] > 0.7
    test = P.split_by_doc(task.group, 0.3)
    import hashlib  # the documented stable rule: sha1("test:<doc>")[:8] as hex, mod 1000, below 300

    in_test = {g: int(hashlib.sha1(f"test:{g}".encode()).hexdigest()[:8], 16) % 1000 < 300 for g in range(n_docs)}
    assert test.tolist() == [in_test[g] for g in task.group]  # whole documents, the same ones on every run
    assert 0.2 < test.mean() < 0.4


def test_meta_neurons_are_the_down_projection_inputs():
    torch.manual_seed(0)
    glp = GLP(Denoiser(DenoiserConfig(d_in=8, n_layers=2, d_model=16, d_mlp=24)),
              Normalizer(torch.zeros(8), torch.ones(8))).eval()
    x = torch.randn(5, 8)
    m = P.meta_neurons(glp, x, 0.1, seed=3)
    assert m.shape == (5, 48)
    # by hand: block 0's down_proj input at sigma 0.1 with the same seeded noise
    eps = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    z = 0.9 * x + 0.1 * eps
    from lmlab.glp.net import sinusoid

    net = glp.net
    e = net.time_embed(sinusoid(torch.tensor([100.0]), 16))
    h = net.in_proj(z)
    b = net.layers[0]
    r = b.ln(h)
    want = torch.nn.functional.silu(b.gate_proj(r) * b.time_proj(e)) * b.up_proj(r)
    assert torch.allclose(m[:, :24].float(), want, atol=2e-3)
    assert torch.equal(P.meta_neurons(glp, x, 0.1, seed=3), m)  # seeded: reproducible


def test_bootstrap_ci_covers_the_mean_of_a_known_distribution():
    rng = np.random.default_rng(4)
    lo, hi = bootstrap_ci(rng.normal(0.0, 1.0, 400), n_boot=4000)
    assert hi - lo == pytest.approx(2 * 1.96 / 20, rel=0.15)  # sd/sqrt(n) = 0.05
    cover = 0
    for s in range(150):
        x = rng.exponential(2.0, 200)  # skewed, true mean 2
        lo, hi = bootstrap_ci(x, n_boot=1000, seed=s)
        cover += lo <= 2.0 <= hi
    assert 0.88 <= cover / 150 <= 0.99
    assert mean_ci([1.0, 1.0, 1.0], 100) == {"mean": 1.0, "lo": 1.0, "hi": 1.0, "n": 3}


def test_token_labels():
    strings = ["The", " cat", " (", "Med", ".)", " said", ' "', "hi", '"', "\n", "Line", " 42"]
    doc = np.zeros(len(strings), int)
    lab = P._token_labels(strings, doc)
    assert lab["tok_in_parens"].tolist()[3] and not lab["tok_in_parens"][5]
    assert lab["tok_in_quotes"][7] and not lab["tok_in_quotes"][5] and not lab["tok_in_quotes"][10]
    assert lab["tok_line_start"][0] and lab["tok_line_start"][10] and not lab["tok_line_start"][1]
    assert lab["tok_numeric"][11] and lab["tok_capitalised"][0] and not lab["tok_capitalised"][1]
    assert lab["tok_punctuation"][4] and lab["tok_word_start"][1] and not lab["tok_word_start"][11]


def test_probe_bad_input_one_line_errors(tmp_path, smol_glp):  # noqa: F811
    _store, glp = smol_glp
    (tmp_path / "one.csv").write_text("text,label\nhello there,1\nanother one,1\n")
    (tmp_path / "empty.csv").write_text("text,label\n")
    from lmlab.errors import ConfigError, DataError

    with pytest.raises(DataError, match="is empty"):
        P.read_csv_task(tmp_path / "empty.csv")
    with pytest.raises(ConfigError, match="outside"):
        P.check_config(P.ProbeConfig(sigmas=[0.0]))
    for args, msg in [(["--csv", str(tmp_path / "one.csv"), "--tasks", ""], "empty or one-sided"),
                      (["--sigmas", "0.1,1.5"], "outside (0, 1]"), (["--tasks", "nope"], "unknown probing task")]:
        r = run_lmlab("glp", "probe", "--glp", str(glp), *args)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, (args, r.stderr)


@pytest.mark.slow
def test_cli_probe(tmp_path, smol_glp):  # noqa: F811
    _store, glp = smol_glp
    rows = "\n".join([f"I loved it {i},1" for i in range(20)] + [f"I hated it {i},0" for i in range(20)])
    (tmp_path / "s.csv").write_text("text,label\n" + rows + "\n")
    r = run_lmlab("glp", "probe", "--glp", str(glp), "--tasks", "domain_python,tok_numeric", "--csv",
                  str(tmp_path / "s.csv"), "--sigmas", "0.1,0.5", "--set", "docs_per_domain=12", "--set", "seq_len=24",
                  "--set", "n_boot=200", "--out", str(tmp_path / "p"), "--json", check=True)
    res = json.loads(r.stdout)
    assert [t["name"] for t in res["tasks"]] == ["domain_python", "tok_numeric", "csv:s.csv"]
    assert {"meta@0.1", "meta@0.5", "raw", "mlp", "meta@0.1 - raw"} <= set(res["mean"])
    assert res["tasks"][2]["raw"]["test_auc"] > 0.9  # "loved" vs "hated" is trivial for the raw residual
    assert (tmp_path / "p" / "probe.png").is_file()


def test_sae_latents_are_a_fourth_feature_set(tmp_path, smol_glp):  # noqa: F811
    """`glp probe --sae`: an SAE of the same layer adds the `sae` set (and meta - sae differences); an SAE of
    another width is refused before the LM loads."""
    from lmlab.errors import DataError
    from lmlab.sae.model import SAEConfig, SparseAutoencoder
    from lmlab.sae.train import save_sae

    store, glp = smol_glp
    torch.manual_seed(0)
    for d, name in ((576, "sae"), (64, "narrow")):
        (tmp_path / name).mkdir()
        save_sae(SparseAutoencoder(SAEConfig(d_in=d, n_latents=96, k=8)), tmp_path / name)
    with pytest.raises(DataError, match="the SAE reads d=64 activations, the GLP's store holds d=576"):
        P.probe(P.ProbeConfig(glp=str(glp), sae=str(tmp_path / "narrow")), progress=False)
    res = P.probe(P.ProbeConfig(glp=str(glp), sae=str(tmp_path / "sae"), tasks=["domain_python", "tok_numeric"],
                                sigmas=[0.1], docs_per_domain=12, seq_len=16, n_boot=100, dense=False), progress=False)
    assert {"sae", "raw", "meta@0.1", "meta@0.1 - sae"} <= set(res["mean"])
    for t in res["tasks"]:
        assert 0 <= t["sae"]["test_auc"] <= 1 and t["sae"]["feature"] < 96

"""The sequence-aware (context) GLP prior: the context index, its causal mask (checked with a planted dependency:
activation t = rotation of activation t - 1 of the same document), that it learns what a single-token prior
cannot, that context=0 is the single-token denoiser exactly, exact resume, and the ΔLM splice path."""

import json

import numpy as np
import pytest
import torch
from glp_fixtures import crash_and_resume

from lmlab.config import apply_overrides, get_preset
from lmlab.errors import ConfigError, DataError
from lmlab.glp import train as T
from lmlab.glp.context import context_from_sel, context_index, gather_context
from lmlab.glp.net import Denoiser, DenoiserConfig, n_params
from lmlab.io import read_jsonl

D, PER_DOC, N_DOCS = 8, 20, 400


def _planted(n_docs=N_DOCS, per_doc=PER_DOC, seed=0):
    """(x (n, D), doc, pos) with x[t] = R x[t - 1] + 0.1 noise within each document (R a fixed rotation), rows in
    a random order (documents interleaved), and position 7 of every 5th document missing."""
    g = torch.Generator().manual_seed(seed)
    R = torch.linalg.qr(torch.randn(D, D, generator=g))[0]
    x = torch.zeros(n_docs, per_doc, D)
    x[:, 0] = torch.randn(n_docs, D, generator=g)
    for t in range(1, per_doc):
        x[:, t] = x[:, t - 1] @ R.T + 0.1 * torch.randn(n_docs, D, generator=g)
    doc, pos = np.repeat(np.arange(n_docs), per_doc), np.tile(np.arange(per_doc), n_docs)
    keep = ~((doc % 5 == 0) & (pos == 7))
    order = np.random.default_rng(seed).permutation(int(keep.sum()))
    return x.reshape(-1, D)[torch.from_numpy(np.nonzero(keep)[0][order])], doc[keep][order], pos[keep][order]


def _write(path, x, doc, pos):
    from lmlab.acts.store import StoreWriter, merge_store

    w = StoreWriter(path, {"model": "synthetic", "layer": 0, "d_model": x.shape[1], "dtype": "float32",
                           "domains": ["a"], "config": {}}, shard_size=1500)
    w.add(x, doc.astype(np.int64), pos.astype(np.int32), 0, 0)
    w.close({"done": True})
    merge_store(path)
    return path


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return _write(tmp_path_factory.mktemp("planted") / "s", *_planted())


def _prov(doc, pos):
    from lmlab.acts.store import PROV_DTYPE

    p = np.zeros(len(doc), PROV_DTYPE)
    p["doc"], p["pos"] = doc, pos
    return p


def test_context_index_finds_exactly_the_previous_positions_of_the_same_document():
    _, doc, pos = _planted(n_docs=30)
    idx = context_index(_prov(doc, pos), 3)
    where = {(d, p): i for i, (d, p) in enumerate(zip(doc, pos))}
    want = np.array([[where.get((d, p - j), -1) if p - j >= 0 else -1 for j in (1, 2, 3)] for d, p in zip(doc, pos)])
    assert np.array_equal(idx, want)
    first = pos == 0
    assert (idx[first] == -1).all() and (idx[pos == 1, 1:] == -1).all()  # document starts: nothing before
    assert (idx[(doc % 5 == 0) & (pos == 8), 0] == -1).all() and (idx[(doc % 5 == 0) & (pos == 9), 1] == -1).all()
    ok = idx >= 0  # never across documents, always at the right distance
    assert (doc[idx[ok]] == np.broadcast_to(doc[:, None], idx.shape)[ok]).all()
    assert (pos[idx[ok]] == (pos[:, None] - np.arange(1, 4))[ok]).all()
    with pytest.raises(DataError, match="more than once"):
        context_index(_prov(np.array([0, 0]), np.array([3, 3])), 2)


def test_a_million_rows_index_in_seconds():
    import time

    rng = np.random.default_rng(0)
    n = 128 * 7813  # 1,000,064 rows
    doc, pos = np.repeat(np.arange(n // 128), 128), np.tile(np.arange(128), n // 128)
    p = rng.permutation(n)
    t = time.perf_counter()
    idx = context_index(_prov(doc[p], pos[p]), 4)
    assert time.perf_counter() - t < 10 and (idx >= 0).sum() == (n // 128) * (4 * 128 - (1 + 2 + 3 + 4))


def test_context_from_a_splice_mask_matches_the_store_rule():
    """The ΔLM side (a (b, T) mask of selected positions, rows doc-major) gives the same context as the store
    side (provenance doc = batch row, pos = column)."""
    g = torch.Generator().manual_seed(0)
    sel = torch.rand(3, 12, generator=g) > 0.25
    sel[1, 9:] = False  # a short, padded document
    h = torch.randn(int(sel.sum()), D, generator=g)
    ctx, mask = context_from_sel(h, sel, 4)
    b, t = sel.nonzero(as_tuple=True)
    idx = context_index(_prov(b.numpy(), t.numpy()), 4)
    assert np.array_equal(mask.numpy(), idx >= 0)
    assert torch.equal(ctx[mask], h[torch.from_numpy(idx[idx >= 0])]) and (ctx[~mask] == 0).all()


def test_the_mask_is_causal_and_within_the_document(planted):
    """Perturbing one stored row changes exactly the outputs of that row and of the next K positions of its own
    document: rows of other documents and earlier positions are bit-for-bit unchanged."""
    from lmlab.acts.store import ActivationStore

    st = ActivationStore.open(planted)
    prov, k = st.provenance(), 3
    idx = context_index(prov, k)
    x = st.get(np.arange(len(st)))
    ctx, mask = gather_context(st, idx)
    assert torch.equal(ctx[mask], x[torch.from_numpy(idx[mask.numpy()])]) and (ctx[~mask] == 0).all()
    torch.manual_seed(0)
    net = Denoiser(DenoiserConfig(d_in=D, d_model=64, d_mlp=64, n_layers=1, context=k)).eval()
    sigma = torch.full((len(x),), 0.5)
    with torch.no_grad():
        ref = net(x, sigma, ctx=x[torch.from_numpy(idx.clip(0))], ctx_mask=mask)
        for d, p in [(3, 5), (7, 0), (10, 19), (5, 6)]:  # (5, 6): the row before a missing position
            row = int(np.nonzero((prov["doc"] == d) & (prov["pos"] == p))[0][0])
            y = x.clone()
            y[row] += 1.0
            out = net(y, sigma, ctx=y[torch.from_numpy(idx.clip(0))], ctx_mask=mask)
            changed = set(np.nonzero((out != ref).any(1).numpy())[0])
            want = {row} | set(np.nonzero((idx == row).any(1))[0])
            later = (prov["doc"] == d) & (prov["pos"] > p) & (prov["pos"] <= p + k)
            assert changed == want and want == {row} | set(np.nonzero(later)[0])
        assert len(want) == 3  # position 7 of document 5 is not stored: 8 and 9 see 6 at distances 2 and 3
        some = mask.any(1)
        assert (net(x[some], sigma[some]) != ref[some]).any(1).all()  # no context at all is another input


def _cfg(store, *over):
    return apply_overrides(get_preset("glp", "tiny"), [f"store={json.dumps(str(store))}", f"net.d_in={D}",
                                                       "dtype=fp32", "eval_rows=512", *over])


def test_a_context_prior_learns_the_planted_dependency(planted, tmp_path):
    """Same size, data and steps: the context prior's held-out loss is far below the single-token prior's,
    which cannot beat the marginal (a rotation of a Gaussian is Gaussian)."""
    over = ["max_steps=300", "lr=3e-3", "log_every=100", "net.d_model=64", "net.d_mlp=128"]
    one = T.train_glp(_cfg(planted, *over), tmp_path / "one", progress=False)["final_eval"]["heldout_loss"]
    ctx = T.train_glp(_cfg(planted, *over, "net.context=2"), tmp_path / "ctx", progress=False)
    assert one > 1.0 and ctx["final_eval"]["heldout_loss"] < 0.5 * one
    from lmlab.glp.load import load_glp

    glp = load_glp(tmp_path / "ctx")
    assert glp.net.cfg.context == 2 and glp.info.n_params == ctx["params"]
    csv = (tmp_path / "ctx" / "runs.csv").read_text().splitlines()
    row = dict(zip(csv[0].split(","), csv[-1].split(",")))
    assert int(row["C"]) > 6 * int(row["N"]) * int(row["D"])  # the K context slots' projections are counted


def test_single_token_denoiser_is_unchanged_and_parameters_are_counted():
    """context=0: the documented single-token forward, no new parameters; a context denoiser creates its
    attention last (same init of the shared weights for the same seed) and n_params counts it."""
    cfg = DenoiserConfig(d_in=D, d_model=32, d_mlp=48, n_layers=2)
    torch.manual_seed(1)
    net = Denoiser(cfg)
    assert not any("ctx" in k for k in net.state_dict())
    x, s = torch.randn(7, D), torch.rand(7)
    from lmlab.glp.net import sinusoid

    e = net.time_embed(sinusoid(1000 * s, 32))
    h = net.in_proj(x)
    for b in net.layers:
        r = b.ln(h)
        h = h + b.down_proj(torch.nn.functional.silu(b.gate_proj(r) * b.time_proj(e)) * b.up_proj(r))
    assert torch.allclose(net(x, s), net.out_proj(net.ln(h)), atol=1e-6)
    with pytest.raises(ValueError, match="takes no context"):
        net(x, s, ctx=torch.zeros(7, 1, D))
    torch.manual_seed(1)
    cnet = Denoiser(DenoiserConfig(d_in=D, d_model=32, d_mlp=48, n_layers=2, context=3))
    sd = cnet.state_dict()
    assert all(torch.equal(v, sd[k]) for k, v in net.state_dict().items())
    with torch.no_grad():
        cnet.ctx_attn.out_proj.weight.zero_(), cnet.ctx_attn.out_proj.bias.zero_()
    assert torch.equal(cnet(x, s, ctx=torch.randn(7, 3, D)), net(x, s))
    for c in (DenoiserConfig(d_in=D, d_model=32, d_mlp=48, context=3),
              DenoiserConfig(d_in=24, d_model=256, d_mlp=64, n_layers=2, context=8, n_llm_layers=4)):
        assert n_params(c) == sum(p.numel() for p in Denoiser(c).parameters())
    with pytest.raises(ConfigError, match="context=-1"):
        DenoiserConfig(d_in=D, context=-1)


def _losses(run):
    return {r["step"]: r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "eval" not in r}


def test_context_run_resumes_exactly(planted, tmp_path, monkeypatch):
    cfg = _cfg(planted, "max_steps=24", "ckpt_every=8", "log_every=1", "net.context=2", "batch_size=64")

    def check(batch):
        assert len(batch) == 5 and batch[3].shape == (64, 2, D)  # (x, sigma, eps, ctx, mask)

    la, lb, a, b = crash_and_resume(cfg, tmp_path, monkeypatch, die_at=13, check=check)
    assert la == lb
    assert all(torch.equal(a[k], b[k]) for k in a) and any("ctx_attn" in k for k in a)


def test_bad_context_input_is_one_line_and_writes_nothing(planted, tmp_path):
    from conftest import run_lmlab

    bad = run_lmlab("glp", "train", "--store", str(planted), "--out", str(tmp_path / "b"), "--context", "-2")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--context" in bad.stderr
    assert not (tmp_path / "b").exists()
    # a store whose rows have no preceding position of their own document (one position per document)
    flat = _write(tmp_path / "flat", torch.randn(400, D), np.arange(400), np.zeros(400))
    with pytest.raises(DataError, match="no training row .* previous position"):
        T.train_glp(_cfg(flat, "net.context=2", "batch_size=64"), tmp_path / "f", progress=False)
    assert not (tmp_path / "f").exists()
    dry = run_lmlab("glp", "train", "--store", str(planted), "--out", str(tmp_path / "d"), "--context", "4",
                    "--dry-run", check=True)
    assert json.loads(dry.stdout)["net"]["context"] == 4


def test_sampling_a_context_prior_needs_real_contexts(planted, tmp_path):
    from lmlab.glp import evaluate as E
    from lmlab.glp.load import load_glp

    T.train_glp(_cfg(planted, "max_steps=3", "batch_size=64", "net.context=2"), tmp_path / "g", progress=False)
    glp = load_glp(tmp_path / "g")
    with pytest.raises(ConfigError, match="no unconditional samples"):
        E.generate(glp, 10, 2)
    with pytest.raises(ConfigError, match="pass --store"):
        E.sample(E.SampleConfig(glp=str(tmp_path / "g"), n=10, steps=2), tmp_path / "x.safetensors")
    res = E.sample(E.SampleConfig(glp=str(tmp_path / "g"), n=50, steps=2, store=str(planted)), tmp_path / "x.safetensors")
    assert res["vs_store"]["n_real"] == 50 and 0 <= res["vs_store"]["acc"] <= 1
    from lmlab.acts.store import ActivationStore, split_rows

    st = ActivationStore.open(planted)
    rows = E.heldout_rows(split_rows(st)[1], 50)
    x, real = E.generate_in_context(glp, st, rows, 2, batch=16)
    assert torch.equal(real, E.heldout_real(st, 50)[0]) and x.shape == real.shape
    out = E.evaluate(tmp_path / "g", n=60, steps=(1,))
    assert {"heldout_loss", "floor", "gaussian", "glp_1step"} <= set(out)


@pytest.mark.dist
def test_ddp_two_ranks_match_one_with_context(planted, tmp_path):
    """torchrun --nproc_per_node 2 (gloo) follows the 1-process loss curve of a context prior."""
    from conftest import run_lmlab, run_torchrun

    common = ["glp", "train", "--store", str(planted), "--no-progress", "--context", "2", "--set", f"net.d_in={D}",
              "--set", "max_steps=8", "--set", "log_every=1", "--set", "dtype=\"fp32\"", "--set", "batch_size=64"]
    run_lmlab(*common, "--out", str(tmp_path / "one"), check=True)
    run_torchrun("--", *common, "--out", str(tmp_path / "two"))
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert one.keys() == two.keys() and all(two[s] == pytest.approx(one[s], rel=1e-4) for s in one)

"""SAE model and trainer: a planted sparse dictionary is recovered, AuxK revives dead latents, decoder rows stay
unit-norm, the sparse decode equals the dense one, and a store run resumes exactly after a crash."""

import json

import numpy as np
import pytest
import torch
from conftest import synthetic_store

from lmlab.sae.model import SAEConfig, SparseAutoencoder, geometric_median
from lmlab.sae.train import SAETrainConfig, Trainable, train_step

D, N_TRUE, K_TRUE = 32, 64, 3


def _planted(n: int, seed: int = 0):
    """x = f D with D (N_TRUE, D) unit atoms and f K_TRUE-sparse, positive (the SAE's generative model)."""
    g = torch.Generator().manual_seed(seed)
    atoms = torch.randn(N_TRUE, D, generator=g)
    atoms = atoms / atoms.norm(dim=1, keepdim=True)
    idx = torch.stack([torch.randperm(N_TRUE, generator=g)[:K_TRUE] for _ in range(n)])
    f = torch.zeros(n, N_TRUE).scatter_(1, idx, 0.5 + torch.rand(n, K_TRUE, generator=g))
    return f @ atoms, atoms


def _train(sae: SparseAutoencoder, x: torch.Tensor, steps: int, cfg: SAETrainConfig) -> Trainable:
    model = Trainable(sae)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999), eps=6.25e-10)
    total_var = float((x - x.mean(0)).pow(2).sum(1).mean())
    g = torch.Generator().manual_seed(1)
    for step in range(steps):
        rows = torch.randint(0, len(x), (cfg.batch_size,), generator=g)
        train_step(cfg, model, opt, x[rows], step, total_var)
    return model


def test_planted_dictionary_is_recovered_and_decoder_rows_stay_unit():
    x, atoms = _planted(20_000)
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=D, n_latents=2 * N_TRUE, k=K_TRUE))
    cfg = SAETrainConfig(batch_size=512, lr=3e-3, warmup_steps=10, dead_tokens=50_000, aux_coef=1 / 32)
    _train(sae, x, 1500, cfg)
    cos = atoms @ sae.W_dec.detach().T  # (N_TRUE, n_latents)
    best = cos.max(1).values
    assert best.mean() >= 0.95, best.sort().values[:8]
    assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(sae.cfg.n_latents), atol=1e-5)
    f = sae.encode(x[:1000])
    assert ((f > 0).sum(1) <= K_TRUE).all()
    fvu = (x[:1000] - sae.decode(f)).pow(2).sum() / (x[:1000] - x[:1000].mean(0)).pow(2).sum()
    assert fvu < 0.1


@pytest.mark.parametrize("aux_coef", [0.0, 1 / 32])
def test_auxk_revives_planted_dead_latents(aux_coef):
    x, _ = _planted(20_000, seed=3)
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=D, n_latents=2 * N_TRUE, k=K_TRUE))
    with torch.no_grad():
        sae.W_enc[:32] *= 0.02  # pre-activations ~0: these 32 never win a top-k slot: planted dead latents
    cfg = SAETrainConfig(batch_size=512, lr=3e-3, warmup_steps=10, dead_tokens=512 * 20, aux_coef=aux_coef)
    model = _train(sae, x, 400, cfg)
    revived = int((model.last_fired[:32] > 0).sum())
    if aux_coef == 0:
        assert revived == 0  # without AuxK nothing pulls them back
    else:
        assert revived >= 16, revived


def test_sparse_decode_equals_dense_and_scale_is_folded():
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=D, n_latents=96, k=5), scale=0.25)
    x = torch.randn(64, D) * 4
    pre = sae.pre_acts(x * sae.scale)
    v, i = sae.select(pre)
    dense = torch.zeros(64, 96).scatter_(1, i, v)
    assert torch.allclose(sae.decode_sparse(v, i), dense @ sae.W_dec + sae.b_dec, atol=1e-5)
    f = sae.encode(x)
    assert torch.equal(f, dense) and torch.allclose(sae.decode(f), (dense @ sae.W_dec + sae.b_dec) / 0.25)


def test_geometric_median_is_robust():
    x = torch.cat([torch.randn(900, 4) * 0.1, torch.full((100, 4), 1000.0)])  # 10% far outliers
    assert geometric_median(x).norm() < 0.2 < x.mean(0).norm()


def test_config_rejects_k_not_below_latents():
    from lmlab.errors import ConfigError

    with pytest.raises(ConfigError, match="k=64 must be smaller than n_latents=64"):
        SAEConfig(d_in=8, n_latents=64, k=64)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """6,000 planted-dictionary rows from 300 documents (20 positions each)."""
    path = tmp_path_factory.mktemp("store") / "s"
    x, _ = _planted(6000, seed=5)
    return synthetic_store(path, x, shard_size=2000)


def _losses(run):
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' not in line]


def test_store_run_resumes_exactly_after_a_crash(store, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    from lmlab.sae import train as T

    cfg = SAETrainConfig(store=str(store), expansion=4, k=K_TRUE, batch_size=256, max_steps=30, ckpt_every=10,
                         log_every=1, dead_tokens=256 * 5, init_rows=1000, eval_rows=500, device="cpu")
    T.train_sae(cfg, tmp_path / "ref", progress=False)
    real = T.train_step

    def dying(cfg_, model, opt, x, step, *a):
        if step == 17:
            raise KeyboardInterrupt  # the process dies here; only what is on disk survives
        return real(cfg_, model, opt, x, step, *a)

    monkeypatch.setattr(T, "train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        T.train_sae(cfg, tmp_path / "v", progress=False)
    monkeypatch.setattr(T, "train_step", real)
    T.train_sae(cfg, tmp_path / "v", resume=True, progress=False)
    assert _losses(tmp_path / "ref") == _losses(tmp_path / "v") and len(_losses(tmp_path / "v")) == 30
    a, b = load_file(tmp_path / "ref" / "sae.safetensors"), load_file(tmp_path / "v" / "sae.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    meta = json.loads((tmp_path / "ref" / "sae.json").read_text())
    assert meta["sae"]["n_latents"] == 4 * D and meta["hook"]["layer"] == 0


def test_cli_trains_and_bad_shape_is_one_line(store, tmp_path):
    from conftest import run_lmlab

    common = ["sae", "train", "--store", str(store), "--no-progress", "--set", "max_steps=12", "--set",
              "batch_size=256", "--set", "init_rows=500", "--set", "eval_rows=200", "--set", 'device="cpu"']
    r = run_lmlab(*common, "--out", str(tmp_path / "r"), "--latents", "96", "--k", "4", check=True)
    summary = json.loads(r.stdout)
    assert summary["sae"]["n_latents"] == 96 and summary["sae"]["k"] == 4 and summary["steps"] == 12
    assert (tmp_path / "r" / "sae.safetensors").is_file() and 0 < summary["final_eval"]["fvu"] < 1.5
    bad = run_lmlab(*common, "--out", str(tmp_path / "bad"), "--latents", "64", "--k", "64")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "k=64 must be smaller than n_latents=64" in bad.stderr and not (tmp_path / "bad").exists()


@pytest.mark.dist
def test_ddp_two_ranks_match_one(store, tmp_path):
    """torchrun --nproc_per_node 2 (gloo) follows the 1-process SAE loss curve at the same global batch (the loss
    is normalised by a constant and AuxK by an all-reduced residual norm; fired latents are all-reduced)."""

    from conftest import run_lmlab, run_torchrun

    common = ["sae", "train", "--store", str(store), "--no-progress", "--latents", "96", "--k", "3", "--set",
              "max_steps=15", "--set", "log_every=1", "--set", "batch_size=256", "--set", "dead_tokens=256",
              "--set", "init_rows=1000", "--set", "eval_rows=300"]
    run_lmlab(*common, "--out", str(tmp_path / "one"), check=True)
    run_torchrun(*common, "--out", str(tmp_path / "two"))
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one) == len(two) == 15 and all(b == pytest.approx(a, rel=1e-4) for a, b in zip(one, two))
    rows = [json.loads(line) for line in (tmp_path / "two" / "metrics.jsonl").read_text().splitlines()]
    assert any(r.get("dead_frac", 0) > 0 for r in rows)  # AuxK was active in the compared steps


def test_nan_rows_are_one_clear_error_and_nothing_is_written(store, tmp_path):
    """NaN rows in a store (corruption after harvest) stop `lmlab sae train` with one line naming the problem,
    before a run directory exists."""
    import shutil

    from conftest import run_lmlab

    from lmlab.acts.store import ActivationStore

    bad = tmp_path / "bad"
    shutil.copytree(store, bad)
    st = ActivationStore.open(bad)
    for sh in st.shards:  # every row: the initialisation sample certainly contains one
        rows = np.memmap(bad / sh["acts"], dtype=np.float32, mode="r+", shape=(sh["count"], D))
        rows[:] = np.nan
        rows.flush()
    r = run_lmlab("sae", "train", "--store", str(bad), "--out", str(tmp_path / "r"), "--no-progress", "--set",
                  "max_steps=5", "--set", "batch_size=256", "--set", "init_rows=500", "--set", 'device="cpu"')
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "NaN/inf in the store's activations" in r.stderr and not (tmp_path / "r").exists()

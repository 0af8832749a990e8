"""GLP trainer on a synthetic activation store: it learns, resumes exactly, and refuses bad input."""

import importlib.util
import json

import numpy as np
import pytest
import torch
from glp_fixtures import D, crash_and_resume, store  # noqa: F401  (store is a fixture)

from lmlab.config import apply_overrides, get_preset
from lmlab.errors import DataError, ResumeMismatch
from lmlab.glp import train as T
from lmlab.io import read_jsonl


def _cfg(store, *over):
    return apply_overrides(get_preset("glp", "tiny"), [f"store={json.dumps(str(store))}", f"net.d_in={D}", *over])


def _losses(run):
    return {r["step"]: r["loss"] for r in read_jsonl(run / "metrics.jsonl") if "eval" not in r}


def test_tiny_glp_learns_and_writes_runs_rows(store, tmp_path):
    s = T.train_glp(_cfg(store, "max_steps=200", "log_every=50", "lr=3e-3", "dtype=fp32"), tmp_path / "r",
                    progress=False)
    evals = [r["eval"] for r in read_jsonl(tmp_path / "r" / "metrics.jsonl") if "eval" in r]
    assert evals[0]["heldout_loss"] > 1.5 and s["final_eval"]["heldout_loss"] < evals[0]["heldout_loss"] - 0.4
    rows = (tmp_path / "r" / "runs.csv").read_text().splitlines()
    assert rows[0].startswith("run,step,N,D,C,loss") and len(rows) - 1 == len(T.checkpoint_steps(200))
    assert (tmp_path / "r" / "glp.safetensors").is_file()
    rows = [r for r in read_jsonl(tmp_path / "r" / "metrics.jsonl") if "eval" not in r]
    assert all(r["grad_norm"] > 0 for r in rows)  # the pre-clip gradient norm of every logged step


def test_adam_beta2_reaches_the_optimizer_and_is_checked(store):
    from lmlab.acts.store import ActivationStore
    from lmlab.errors import ConfigError

    cfg = _cfg(store, "adam_beta2=0.95")
    _, opt = T.build_glp(cfg, ActivationStore.open(store), torch.device("cpu"))
    assert opt.param_groups[0]["betas"] == (0.9, 0.95)
    for bad in ("1.0", "0", "-0.5"):
        with pytest.raises(ConfigError, match="adam_beta2"):
            _cfg(store, f"adam_beta2={bad}")


def test_batches_cover_train_rows_once_per_epoch_and_exclude_held_out(store):
    from lmlab.acts.store import HELD_OUT_MOD, ActivationStore, batch_rows, split_rows

    st = ActivationStore.open(store)
    train, held = split_rows(st)
    m = HELD_OUT_MOD
    assert len(held) == 8000 // m and set(st.provenance(held)["doc"] % m) == {m - 1}
    cfg = _cfg(store, "batch_size=256")
    per_epoch = len(train) // 256
    seen = np.concatenate([batch_rows(train, 256, cfg.seed, s) for s in range(per_epoch)])
    assert len(np.unique(seen)) == len(seen) == per_epoch * 256 and not np.isin(seen, held).any()
    two = np.concatenate([batch_rows(train, 256, cfg.seed, 3, rank=r, world=2) for r in (0, 1)])
    assert sorted(two) == sorted(batch_rows(train, 256, cfg.seed, 3))


def test_train_subset_is_nested_the_same_for_every_seed_and_only_it_is_trained_on(store, tmp_path, monkeypatch):
    from lmlab.acts.store import ActivationStore, split_rows
    from lmlab.errors import ConfigError

    train, _ = split_rows(ActivationStore.open(store))
    small, big = T.subset_rows(train, 512), T.subset_rows(train, 1024)
    assert len(small) == 512 and np.isin(small, big).all() and np.isin(big, train).all()
    seen = []
    real = T.batch_rows
    monkeypatch.setattr(T, "batch_rows", lambda rows, *a, **k: seen.append(real(rows, *a, **k)) or seen[-1])
    for seed in (0, 1):  # 2 passes over 512 rows with batch 256: every subset row twice, nothing else
        seen.clear()
        T.train_glp(_cfg(store, "train_subset=512", "batch_size=256", "max_steps=4", f"seed={seed}"),
                    tmp_path / f"s{seed}", progress=False)
        rows, counts = np.unique(np.concatenate(seen), return_counts=True)
        assert np.array_equal(rows, small) and (counts == 2).all()
    with pytest.raises(DataError, match="train_subset"):
        T.subset_rows(train, len(train) + 1)
    with pytest.raises(ConfigError, match="smaller than one batch"):
        _cfg(store, "train_subset=100", "batch_size=256")


@pytest.mark.parametrize("ema", [None, 0.9])
def test_resume_after_a_crash_is_exact(store, tmp_path, monkeypatch, ema):
    cfg = _cfg(store, "max_steps=40", "ckpt_every=10", "log_every=1", "dtype=fp32", f"ema={json.dumps(ema)}")
    la, lb, a, b = crash_and_resume(cfg, tmp_path, monkeypatch, die_at=25)
    assert la == lb
    assert all(torch.equal(a[k], b[k]) for k in a)  # the EMA weights too
    if ema:  # the artifact is the EMA, not the raw weights
        from safetensors.torch import load_file

        raw = load_file(tmp_path / "ref" / "glp.raw.safetensors")
        assert not torch.equal(raw["net.in_proj.weight"], a["net.in_proj.weight"])
    with pytest.raises(ResumeMismatch, match=r"differs from the saved GLP run in .*lr \(0.001 -> 0.1\)"):
        T.train_glp(_cfg(store, "max_steps=40", "ckpt_every=10", "log_every=1", "lr=0.1"), tmp_path / "v",
                    resume=True, progress=False)


def test_dimension_mismatch_is_one_clear_error(store, tmp_path):
    """Only an explicit d_in that disagrees with the store is refused (presets take the store's width)."""
    with pytest.raises(DataError, match="d=16 activations, the GLP expects d_in=576"):
        T.train_glp(apply_overrides(get_preset("glp", "tiny"), [f"store={json.dumps(str(store))}", "net.d_in=576"]),
                    tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()


def test_presets_take_the_store_width_with_no_flags(store, tmp_path):
    """A store of another width (d=16, not SmolLM2's 576) trains with `--preset tiny` and no flags; the paper's
    family resolves to d_model 2d, d_mlp 4d; config.json and --dry-run show the resolved numbers; an explicit
    net.d_in that disagrees is one line."""
    from conftest import run_lmlab

    r = run_lmlab("glp", "train", "--store", str(store), "--out", str(tmp_path / "r"), "--preset", "tiny",
                  "--no-progress", check=True)
    assert json.loads(r.stdout)["steps"] == 40
    net = json.loads((tmp_path / "r" / "config.json").read_text())["net"]
    assert (net["d_in"], net["d_model"], net["d_mlp"]) == (D, 128, 256)
    dry = run_lmlab("glp", "train", "--store", str(store), "--out", str(tmp_path / "d"), "--preset", "smollm2-d3",
                    "--dry-run", check=True)
    net = json.loads(dry.stdout)["net"]
    assert (net["d_in"], net["d_model"], net["d_mlp"], net["n_layers"]) == (D, 2 * D, 4 * D, 3)
    bad = run_lmlab("glp", "train", "--store", str(store), "--out", str(tmp_path / "b"), "--set", "net.d_in=576")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert "the store holds d=16 activations, the GLP expects d_in=576" in bad.stderr


def test_nan_in_a_batch_is_one_clear_error(store, tmp_path):
    """A NaN written into a stored row after harvest (disk corruption, a bad producer) stops training with a
    DataError naming the step, raised from the prefetch thread in the trainer's own thread."""
    import shutil

    from lmlab.acts.store import ActivationStore

    bad = tmp_path / "bad"
    shutil.copytree(store, bad)
    st = ActivationStore.open(bad)
    rows = np.memmap(bad / st.shards[0]["acts"], dtype=np.float32, mode="r+", shape=(st.shards[0]["count"], D))
    rows[:] = np.nan  # every row of the first shard: the first batch certainly contains one
    rows.flush()
    with pytest.raises(DataError, match="NaN/inf in the activation batch of step 1"):
        T.train_glp(apply_overrides(_cfg(store), [f"store={json.dumps(str(bad))}"]), tmp_path / "r", progress=False)


def test_checkpoint_steps_are_log_spaced():
    assert T.checkpoint_steps(1000) == [1, 2, 3, 6, 10, 18, 32, 56, 100, 178, 316, 562, 1000]


@pytest.mark.dist
def test_ddp_two_ranks_match_one(store, tmp_path):
    """torchrun --nproc_per_node 2 (gloo) follows the 1-process GLP loss curve at the same global batch."""

    common = ["glp", "train", "--store", str(store), "--no-progress", "--set", f"net.d_in={D}", "--set", "max_steps=12",
              "--set", "log_every=1", "--set", "dtype=\"fp32\""]
    from conftest import run_lmlab, run_torchrun

    run_lmlab(*common, "--out", str(tmp_path / "one"), check=True)
    # "--": torchrun's own parser would take --log for its --log-dir (prefix matching)
    run_torchrun("--", *common, "--out", str(tmp_path / "two"), "--log", "tensorboard")
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert one.keys() == two.keys() and all(two[s] == pytest.approx(one[s], rel=1e-4) for s in one)
    if importlib.util.find_spec("tensorboard"):  # only rank 0 tracks: one events file
        assert len(list((tmp_path / "two" / "tb").glob("events.out.tfevents.*"))) == 1


@pytest.mark.parametrize("native", [False, True])
def test_dtype_auto_is_resolved_in_config_json(store, tmp_path, monkeypatch, native):
    """dtype=auto trains in bf16 only where the CPU computes it natively, and config.json says which ran."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: native, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert T.GLPTrainConfig().dtype == "auto"
    T.train_glp(_cfg(store, "max_steps=2", "dtype=\"auto\"", "device=\"cpu\""), tmp_path / "r", progress=False)
    assert json.loads((tmp_path / "r" / "config.json").read_text())["dtype"] == ("bf16" if native else "fp32")

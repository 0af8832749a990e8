"""Experiment tracking (runs/tracking.py): TensorBoard events read back equal metrics.jsonl for the LM, GLP and SAE
trainers; wandb offline writes its local run; a missing package is one line naming the extra."""

import json
import sys

import pytest
import torch
from conftest import synthetic_store

from lmlab.config import apply_overrides, get_preset
from lmlab.errors import ConfigError
from lmlab.io import read_jsonl
from lmlab.runs import config_diff, tracking

pytest.importorskip("tensorboard", reason="the tracking extra is not installed: pip install 'lmlab[tracking]'")

D = 12


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """3,000 rows of a 12-d synthetic store from 150 documents."""
    path = tmp_path_factory.mktemp("store") / "s"
    g = torch.Generator().manual_seed(0)
    x = torch.tanh(torch.randn(3000, D, generator=g) @ torch.randn(D, D, generator=g)) + 1
    return synthetic_store(path, x, shard_size=1000)


def _events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    return ea


def _scalars(ea, tag):
    return {e.step: e.value for e in ea.Scalars(tag)}


def _config_text(ea) -> str:
    return ea.Tensors("config/text_summary")[-1].tensor_proto.string_val[0].decode()


def _check_against_metrics(run, eval_key):
    """train/loss at every logged step and eval/<eval_key> at every eval step equal metrics.jsonl's (float32);
    the resolved config (config.json) is recorded as text."""
    rows = read_jsonl(run / "metrics.jsonl")
    ea = _events(run)
    train = {r["step"]: r["loss"] for r in rows if "eval" not in r}
    evals = {r["step"]: r["eval"][eval_key] for r in rows if "eval" in r}
    got = _scalars(ea, "train/loss")
    assert got.keys() == train.keys() and all(got[s] == pytest.approx(train[s], rel=1e-6) for s in train)
    got = _scalars(ea, f"eval/{eval_key}")
    assert got.keys() == evals.keys() and all(got[s] == pytest.approx(evals[s], rel=1e-6) for s in evals)
    text = _config_text(ea)
    assert json.loads(text.split("```json\n", 1)[1].rsplit("```", 1)[0]) == json.loads((run / "config.json").read_text())


def test_tensorboard_events_equal_metrics_and_resume_replaces_rerun_steps(tmp_path):
    with tracking.Tracker(tmp_path, ["tensorboard"], {"lr": 1.0}) as t:
        for s in range(1, 6):
            t.log(s, {"step": s, "loss": float(s), "lr": 0.1, "flag": True, "note": "x"})
            if s in (2, 5):
                t.log(s, {"step": s, "heldout_loss": s / 10, "inner": {"a": 2}}, "eval")
    with tracking.Tracker(tmp_path, ["tensorboard"], {"lr": 1.0}, start_step=3) as t:  # resumed from step 3
        for s in range(4, 7):
            t.log(s, {"loss": 10.0 * s})
    ea = _events(tmp_path)
    assert _scalars(ea, "train/loss") == {1: 1, 2: 2, 3: 3, 4: 40, 5: 50, 6: 60}
    # the eval of step 5 came after the checkpoint (step 3): purged with the other re-run steps
    assert _scalars(ea, "eval/heldout_loss") == {2: pytest.approx(0.2)} and _scalars(ea, "eval/inner/a") == {2: 2}
    assert set(ea.Tags()["scalars"]) >= {"train/loss", "train/lr"} and "train/flag" not in ea.Tags()["scalars"]
    assert '"lr": 1.0' in _config_text(ea)


def test_tracker_is_silent_off_rank_0(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    with tracking.Tracker(tmp_path, ["tensorboard", "wandb"], {}) as t:
        t.log(1, {"loss": 1.0})
    assert not (tmp_path / "tb").exists() and not (tmp_path / "wandb").exists()


def test_missing_package_is_one_line_naming_the_extra(store, tmp_path, monkeypatch):
    from lmlab.glp.train import train_glp

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # what `import tensorboard` sees when it is absent
    with pytest.raises(ConfigError) as e:
        tracking.check(["tensorboard"])
    assert "pip install 'lmlab[tracking]'" in str(e.value) and "\n" not in str(e.value)
    cfg = apply_overrides(get_preset("glp", "tiny"), [f"store={json.dumps(str(store))}", "log=tensorboard"])
    with pytest.raises(ConfigError, match=r"--log tensorboard needs the tensorboard package"):
        train_glp(cfg, tmp_path / "r", progress=False)
    assert not (tmp_path / "r").exists()
    with pytest.raises(ConfigError, match="unknown tracker 'mlflow'"):
        tracking.check(["mlflow"])


def test_log_option_parsing_and_resume_ignores_log():
    from lmlab.cli_options import parse_log

    assert parse_log(["tensorboard,wandb", "tensorboard"]) == ["tensorboard", "wandb"] and parse_log([]) is None
    with pytest.raises(ConfigError, match="--log 'nope'"):
        parse_log(["nope"])
    assert config_diff({"train": {"log": [], "lr": 1}}, {"train": {"log": ["wandb"], "lr": 1}}) == []
    assert config_diff({"lr": 1}, {"lr": 1, "log": ["tensorboard"]}) == []


def test_lm_run_logs_to_tensorboard(tiny_data, tmp_path):
    from lmlab.lm.train import train

    cfg = apply_overrides(get_preset("lm", "tiny"), [f"data={json.dumps(str(tiny_data))}", "max_steps=6",
                                                    "eval_every=3", "eval_windows=2", "log=tensorboard"])
    train(cfg, tmp_path / "r", progress=False)
    _check_against_metrics(tmp_path / "r", "loss")


def test_glp_run_logs_to_tensorboard_and_resumes_after_a_crash(store, tmp_path, monkeypatch):
    """A run that dies after step 5 and resumes from its step-4 checkpoint: the events of the re-run steps
    replace the old ones (purge_step), so TensorBoard still equals the (rolled back, re-logged) metrics.jsonl."""
    from lmlab.glp import train as T

    cfg = apply_overrides(get_preset("glp", "tiny"), [
        f"store={json.dumps(str(store))}", "max_steps=8", "log_every=1", "batch_size=64", "eval_rows=128",
        "dtype=fp32", "ckpt_every=4", "log=tensorboard"])
    real = T.train_step

    def dying(cfg_, model, glp, opt, batch, step, world):
        if step == 5:
            raise KeyboardInterrupt  # the process dies here; only what is on disk survives
        return real(cfg_, model, glp, opt, batch, step, world)

    monkeypatch.setattr(T, "train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        T.train_glp(cfg, tmp_path / "r", progress=False)
    monkeypatch.setattr(T, "train_step", real)
    T.train_glp(cfg, tmp_path / "r", resume=True, progress=False)
    _check_against_metrics(tmp_path / "r", "heldout_loss")
    assert sorted(_scalars(_events(tmp_path / "r"), "train/loss")) == list(range(1, 9))


def test_sae_cli_logs_to_tensorboard(store, tmp_path):
    from conftest import run_lmlab

    run_lmlab("sae", "train", "--store", str(store), "--out", str(tmp_path / "r"), "--no-progress", "--log",
              "tensorboard", "--set", "max_steps=6", "--set", "batch_size=128", "--set", "init_rows=300",
              "--set", "eval_rows=200", "--set", "log_every=2", "--set", 'device="cpu"', check=True)
    _check_against_metrics(tmp_path / "r", "fvu")


def test_wandb_offline_writes_its_local_run(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb (the tracking extra) is not installed")
    monkeypatch.delenv("WANDB_MODE", raising=False)
    with tracking.Tracker(tmp_path, ["wandb"], {"lr": 0.5}, name="t") as t:
        for s in range(1, 4):
            t.log(s, {"loss": 1.0 / s})
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    rid = (tmp_path / "wandb-id.txt").read_text().strip()
    assert len(runs) == 1 and runs[0].name.endswith(rid) and list(runs[0].glob("run-*.wandb"))


def test_log_option_on_the_cli(tmp_path):
    from conftest import run_lmlab

    r = run_lmlab("lm", "train", "--out", str(tmp_path / "r"), "--log", "tensorboard,wandb", "--log", "tensorboard",
                  "--dry-run", check=True)
    assert json.loads(r.stdout)["log"] == ["tensorboard", "wandb"]
    bad = run_lmlab("lm", "train", "--out", str(tmp_path / "r"), "--log", "mlflow", "--dry-run")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1 and "--log 'mlflow'" in bad.stderr
    for stage in ("glp", "sae"):
        assert "--log" in run_lmlab(stage, "train", "--help", env={"COLUMNS": "200"}, check=True).stdout


def test_a_field_added_since_an_old_run_compares_with_its_default():
    # an older run's config.json lacks a field added later (adam_beta2, net.context): it used the default
    old, defaults = {"lr": 1, "net": {"w": 2}}, {"lr": 0.1, "adam_beta2": 0.999, "net": {"w": 8, "context": 0}}
    assert config_diff(old, {"lr": 1, "adam_beta2": 0.999, "net": {"w": 2, "context": 0}}, defaults=defaults) == []
    assert config_diff(old, {"lr": 1, "adam_beta2": 0.95, "net": {"w": 2, "context": 8}}, defaults=defaults) == [
        "adam_beta2 (0.999 -> 0.95)", "net.context (0 -> 8)"]
    assert config_diff(old, {"lr": 1, "adam_beta2": 0.999, "net": {"w": 2}}) == ["adam_beta2 (None -> 0.999)"]

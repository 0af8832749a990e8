"""A tiny `lmlab scaling sweep` end to end: real training runs, runs.csv rows for intermediate checkpoints,
resume skips finished runs, and the rows feed `lmlab scaling fit`."""

from __future__ import annotations

import json

import pytest

from lmlab.errors import ConfigError
from lmlab.runs.table import read_rows
from lmlab.scaling.sweep import SweepConfig, sweep
from tests.conftest import run_lmlab


def test_tiny_sweep_end_to_end(tiny_data, tmp_path):
    out = tmp_path / "sweep"
    args = ("scaling", "sweep", "--out", str(out), "--data", str(tiny_data), "--sizes", "8x1,16x1",
            "--tokens-per-param", "2", "--set", "seq_len=32", "--set", "batch_size=8", "--set", "evals_per_run=4",
            "--set", "eval_windows=4", "--set", "device=cpu", "--no-progress")
    r = run_lmlab(*args, check=True)
    summary = json.loads(r.stdout.strip().splitlines()[-1])
    assert summary["runs"] == ["8x1_tpp2", "16x1_tpp2"]
    rows = read_rows(out / "runs.csv")
    by_run = {}
    for row in rows:
        by_run.setdefault(row["run"], []).append(row)
    assert set(by_run) == {"8x1_tpp2", "16x1_tpp2"}
    for run_rows in by_run.values():
        assert len(run_rows) >= 4  # intermediate checkpoints are rows too
        assert [int(x["step"]) for x in run_rows] == sorted(int(x["step"]) for x in run_rows)
    big, small = by_run["16x1_tpp2"][-1], by_run["8x1_tpp2"][-1]
    assert float(big["C"]) > float(small["C"]) and float(big["N_total"]) > float(small["N_total"])
    cfg = json.loads((out / "16x1_tpp2" / "config.json").read_text())["train"]
    assert cfg["lr"] < json.loads((out / "8x1_tpp2" / "config.json").read_text())["train"]["lr"]  # LR ~ 1/sqrt(d)
    # resumable: a second call finds both runs finished and trains nothing
    r2 = run_lmlab(*args, check=True)
    assert "training" not in r2.stdout and len(read_rows(out / "runs.csv")) == len(rows)
    # a different config into the same directory is refused before any training
    with pytest.raises(ConfigError, match="different config"):
        sweep(SweepConfig(sizes=["8x1"], data=str(tiny_data)), out, progress=False)
    # the rows feed the fitter
    f = run_lmlab("scaling", "fit", "--runs", str(out / "runs.csv"), "--law", "kaplan-c", "--bootstrap", "10",
                  "--json", check=True)
    assert json.loads(f.stdout)["n_points"] == len(rows)


@pytest.mark.slow
@pytest.mark.dist
def test_sweep_under_torchrun_matches_one_process(tiny_data, tmp_path):
    """`torchrun --nproc_per_node 2 -m lmlab scaling sweep`: each run is data-parallel (the lm trainer's DDP) and
    its held-out losses equal the 1-process run's up to floating-point reduction order."""
    import os
    import subprocess
    import sys

    common = ["-m", "lmlab", "scaling", "sweep", "--data", str(tiny_data), "--sizes", "8x1",
              "--tokens-per-param", "2", "--set", "seq_len=32", "--set", "batch_size=8", "--set", "device=cpu",
              "--no-progress"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    losses = {}
    for world in (1, 2):
        out = tmp_path / f"w{world}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(world),
               *common, "--out", str(out)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
        assert r.returncode == 0, r.stderr[-2000:]
        losses[world] = [float(x["loss"]) for x in read_rows(out / "runs.csv")]
    assert len(losses[1]) == len(losses[2]) >= 2
    for a, b in zip(losses[1], losses[2]):
        assert abs(a - b) < 5e-3

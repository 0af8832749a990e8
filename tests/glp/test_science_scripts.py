"""The issue-19 experiment scripts end to end on a small real SmolLM2 store (slow): the recipe ablation writes one
JSON per (cell, seed) with machine paths replaced, resumes without retraining, and summarises; the context
comparison matches compute; utility-vs-loss fits a trend over the ablation's GLPs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SMALL = ["--set", "max_steps=3", "--set", "train_subset=2048", "--set", "batch_size=256", "--set", "eval_rows=256",
         "--set", "net.d_model=64", "--set", "net.d_mlp=128"]


def _run(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


@pytest.mark.slow
def test_ablation_context_and_utility_scripts(tmp_path):
    from lmlab.acts.harvester import HarvestConfig, harvest

    store = tmp_path / "store"
    harvest(HarvestConfig(model="smollm2", layer=15, tokens=12000, out=str(store), seq_len=64, batch=16),
            progress=False)
    abl, runs = tmp_path / "abl", tmp_path / "runs"
    args = [str(ROOT / "experiments" / "glp_ablation.py"), "--store", str(store), "--out", str(abl), "--runs",
            str(runs), "--seeds", "0,1", "--cells", "base,ema_0.998", "--n", "200", "--delta-docs", "6", *SMALL]
    _run(*args)
    cell = json.loads((abl / "cells" / "ema_0.998" / "s1.json").read_text())
    assert len(cell["acc_correct"]) == 80 and len(cell["delta_lm"]["per_doc"]["n"]) == 6
    assert str(store) not in json.dumps(cell) and str(tmp_path) not in json.dumps(cell) and "STORE" in cell["command"]
    res = json.loads((abl / "ablation.json").read_text())
    diff = res["cells"]["ema_0.998"]["delta_glp_1step"]["minus_base"]
    assert diff["ci95"][0] <= diff["mean"] <= diff["ci95"][1] and "| ema_0.998 |" in (abl / "ablation.md").read_text()
    assert "GLP denoiser" not in _run(*args).stdout  # a rerun trains nothing

    ctx = _run(str(ROOT / "experiments" / "glp_context.py"), "--single", str(runs / "base" / "s0"), "--runs",
               str(runs), "--out", str(tmp_path / "ctx"), "--k", "4", "--n", "200", "--delta-docs", "6")
    out = json.loads((tmp_path / "ctx" / "context.json").read_text())
    b = out["budget"]  # matched compute: steps x FLOPs per activation equal within one step
    assert abs(b["context_steps"] * b["context_flops_per_act"] - b["single_steps"] * b["single_flops_per_act"]) <= \
        b["context_flops_per_act"] and "glp_1step" in out["context_minus_single"], ctx.stdout

    _run(str(ROOT / "experiments" / "glp_utility_vs_loss.py"), "--store", str(store), "--ablation", str(abl),
         "--runs", str(runs), "--out", str(tmp_path / "util"), "--probe-seeds", "0,1", "--docs-per-domain", "24",
         "--n-boot", "200")
    util = json.loads((tmp_path / "util" / "utility_vs_loss.json").read_text())
    assert len(util["rows"]) == 4 and {"delta_glp_1step", "meta_auc"} <= set(util["trends"])


@pytest.mark.slow
def test_confirm_script_trains_scores_and_resumes(tmp_path):
    """experiments/glp_confirm.py: train + eval + delta-lm in one command; run.json records the cost and the
    load with machine paths replaced; a rerun after everything is there trains and scores nothing."""
    from lmlab.acts.harvester import HarvestConfig, harvest

    store = tmp_path / "store"
    harvest(HarvestConfig(model="smollm2", layer=15, tokens=12000, out=str(store), seq_len=64, batch=16),
            progress=False)
    out, run = tmp_path / "out", tmp_path / "run"
    args = [str(ROOT / "experiments" / "glp_confirm.py"), "--store", str(store), "--run", str(run), "--out",
            str(out), "--n", "200", "--steps", "2,4", "--n-docs", "4",
            *SMALL]
    assert "lmlab glp train --store" in _run(*args, "--dry-run").stdout and not out.exists()
    bad = subprocess.run([sys.executable, *args[:2], str(tmp_path), *args[3:]], capture_output=True, text=True)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "not an activation store" in bad.stderr
    assert not out.exists()
    _run(*args)
    rec = json.loads((out / "run.json").read_text())
    assert rec["training"]["train_wall_s"] > 0 and len(rec["training"]["loadavg_start"]) == 3
    assert rec["summary"]["steps"] == 3 and rec["commands"][0].startswith("lmlab glp train --store STORE --out RUN")
    for name in ("run.json", "eval.json", "delta_lm.json", "config.json"):
        assert str(tmp_path) not in (out / name).read_text(), name
    assert (out / "metrics.jsonl").is_file() and {"glp_2step", "glp_4step"} <= set(json.loads((out / "eval.json").read_text()))
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in ("eval.json", "delta_lm.json")}
    again = _run(*args)
    assert "GLP denoiser" not in again.stdout and json.loads(again.stdout.splitlines()[-1])["training"] == rec["training"]
    assert before == {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in ("eval.json", "delta_lm.json")}

"""The CLI contract: --version, sub-apps, --dry-run, one-line errors."""

import json

from conftest import run_lmlab

import lmlab


def test_version():
    r = run_lmlab("--version", check=True)
    assert r.stdout.strip() == f"lmlab {lmlab.__version__}"


def test_stage_subapps_listed():
    r = run_lmlab("--help", check=True)
    for stage in ("data", "lm", "demo"):
        assert stage in r.stdout


def test_presets_listed():
    r = run_lmlab("lm", "presets", check=True)
    assert {"tiny", "demo", "small", "gpt100m"} <= set(r.stdout.split())


def test_data_prepare_dry_run_and_bad_corpus(tmp_path):
    r = run_lmlab("data", "prepare", "--out", str(tmp_path / "d"), "--vocab-size", "1024", "--dry-run", check=True)
    assert json.loads(r.stdout)["vocab_size"] == 1024 and not (tmp_path / "d").exists()
    r = run_lmlab("data", "prepare", "--out", str(tmp_path / "d"), "--corpus", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "meta.json").exists()


def test_malformed_jsonl_corpus_is_one_line(tmp_path):
    bad = tmp_path / "c.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": broken\n{"text": "fine"}\n')
    r = run_lmlab("data", "prepare", "--out", str(tmp_path / "d"), "--corpus", str(bad), "--vocab-size", "300")
    assert r.returncode == 2 and "c.jsonl:2" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "d" / "meta.json").exists()


def test_unknown_model_spec_is_one_line(tmp_path):
    r = run_lmlab("lm", "generate", str(tmp_path / "no-such-model"))
    assert r.returncode == 2 and "no-such-model" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_demo_dry_run():
    r = run_lmlab("demo", "--quick", "--dry-run", check=True)
    assert '"max_steps": 60' in r.stdout

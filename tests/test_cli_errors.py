"""Bad input -> one line `error: <message> — <hint>`, exit code 2, no traceback, nothing half-written (issue 14).

Every case runs the real CLI in a subprocess on tiny inputs made here; none trains or loads a real model.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import run_lmlab

NO_CUDA = {"CUDA_VISIBLE_DEVICES": ""}  # "no GPU" on every machine, GPU machines included


def one_line_error(r, *needles: str) -> str:
    """Assert the contract and return the line."""
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr[-2000:]
    for n in needles:
        assert n in lines[0], (n, lines[0])
    return lines[0]


# ---- --set key=value: checked against the config field's annotation ---------------------------------------------
@pytest.mark.parametrize("item, needles", [
    ("max_steps=abc", ["--set max_steps=abc", "takes an integer"]),
    ("lr=[1]", ["--set lr=[1]", "takes a number"]),
    ("dtype=fp8", ["--set dtype=fp8", "fp32 | bf16"]),
    ("model.n_layer=x", ["--set model.n_layer=x", "takes an integer"]),
    ("compile=maybe", ["--set compile=maybe", "true or false"]),
    ("seq_len=12.5", ["--set seq_len=12.5", "takes an integer"]),
])
def test_set_value_of_the_wrong_type_is_one_line(tmp_path, item, needles):
    out = tmp_path / "run"
    one_line_error(run_lmlab("lm", "train", "--out", str(out), "--set", item), *needles)
    assert not out.exists()


def test_set_values_are_converted_to_the_field_type(tmp_path):
    r = run_lmlab("lm", "train", "--out", str(tmp_path / "run"), "--dry-run", "--set", "lr=1", "--set",
                  "max_steps=1e2", "--set", "name=123", "--set", "compile=false", check=True)
    cfg = json.loads(r.stdout)
    assert (cfg["lr"], cfg["max_steps"], cfg["name"], cfg["compile"]) == (1.0, 100, "123", False)
    assert isinstance(cfg["lr"], float) and isinstance(cfg["max_steps"], int)
    r = run_lmlab("data", "prepare", "--out", str(tmp_path / "d"), "--dry-run", "--set", "domains=general,medical",
                  "--set", "max_train_tokens=null", check=True)
    cfg = json.loads(r.stdout)
    assert cfg["domains"] == ["general", "medical"] and cfg["max_train_tokens"] is None


def test_set_type_check_unit():
    from lmlab.config import apply_overrides
    from lmlab.data.prepare import DataConfig
    from lmlab.errors import ConfigError

    cfg = apply_overrides(DataConfig(), ["domains=[\"a\"]", "max_val_tokens=5.0", "tokenizer=null"])
    assert cfg.domains == ["a"] and cfg.max_val_tokens == 5 and isinstance(cfg.max_val_tokens, int)
    for bad in ("max_val_tokens=5.5", "max_val_tokens=true", "domains=[1]", "vocab_size=", "domains=a,,b"):
        with pytest.raises(ConfigError, match=f"--set {bad.split('=')[0]}="):
            apply_overrides(DataConfig(), [bad])


# ---- list and number options: one shared parser ----------------------------------------------------------------
@pytest.mark.parametrize("args, needles", [
    (["glp", "eval", "--glp", "G", "--store", "S", "--steps", "1,a"], ["--steps '1,a'", "'a' is not an integer",
                                                                     "comma-separated integers >= 1"]),
    (["glp", "eval", "--glp", "G", "--store", "S", "--n", "0"], ["--n: 0 is not >= 2"]),
    (["glp", "sweep", "--store", "S", "--out", "{out}", "--depths", ""], ["--depths '' is empty"]),
    (["glp", "sweep", "--store", "S", "--out", "{out}", "--depths", "0,2"], ["--depths '0,2': 0 is not >= 1"]),
    (["glp", "probe", "--glp", "G", "--sigmas", "0.1,x"], ["--sigmas '0.1,x'", "numbers in (0, 1]"]),
    (["glp", "probe", "--glp", "G", "--sigmas", "0.1,1.5"], ["1.5 is outside (0, 1]"]),
    (["scaling", "fit", "--runs", "R.csv", "--law", "chinchilla", "--starts", "abc"],
     ["--starts 'abc'", "(or all)"]),
    (["scaling", "fit", "--runs", "R.csv", "--law", "chinchilla", "--starts", "0"], ["--starts '0': 0 is not >= 1"]),
    (["scaling", "critical-batch", "--loss", "2.5,x"], ["--loss '2.5,x'", "numbers > 0"]),
    (["scaling", "critical-batch", "--loss", ""], ["--loss '' is empty"]),
    (["scaling", "critical-batch", "--loss", "nan"], ["not a finite number"]),
    (["scaling", "allocate", "--budget", "1e20,-1", "--fit", "F.json"], ["--budget", "-1 is not > 0"]),
    (["scaling", "predict", "--runs", "R.csv", "--fit-max-compute", "1e18", "--target", "big"], ["--target 'big'"]),
    (["scaling", "sweep", "--out", "{out}", "--tokens-per-param", "10,0", "--dry-run"], ["--tokens-per-param"]),
    (["eval", "fewshot", "--task", "2D+", "--shots", "0,-1", "--dry-run"], ["--shots '0,-1'", "integers >= 0"]),
    (["eval", "fewshot", "--task", "2D+", "--limit", "0", "--dry-run"], ["--limit: 0 is not >= 1"]),
    (["acts", "harvest", "--layer", "1", "--out", "{out}", "--tokens", "0"], ["--tokens: 0 is not >= 1"]),
    (["acts", "harvest", "--layer", "1", "--out", "{out}", "--domains", ","], ["--domains ',' is empty"]),
    (["data", "prepare", "--out", "{out}", "--vocab-size", "10"], ["--vocab-size: 10 is not >= 259"]),
    (["data", "prepare", "--out", "{out}", "--vocab-size", "abc"], ["'--vocab-size'", "lmlab data prepare --help"]),
    (["lm", "train", "--out", "{out}", "--max-steps", "0"], ["--max-steps: 0 is not >= 1"]),
    (["lm", "generate", "smollm2", "--max-new-tokens", "0"], ["--max-new-tokens: 0 is not >= 1"]),
    (["acts", "harvest", "--out", "{out}"], ["Missing option '--layer'"]),
])
def test_bad_list_or_number_option_is_one_line(tmp_path, args, needles):
    out = tmp_path / "out"
    paths = {"{out}": out, "G": tmp_path / "glp", "S": tmp_path / "store", "R.csv": tmp_path / "runs.csv",
             "F.json": tmp_path / "fit.json"}  # none exists: the option is checked before any of them is read
    args = [str(paths[a]) if a in paths else a for a in args]
    one_line_error(run_lmlab(*args), *needles)
    assert not out.exists()


def test_shared_parser_unit():
    from lmlab.cli_options import check_number, parse_list, parse_number
    from lmlab.errors import ConfigError

    assert parse_list(None, "--x", int) is None
    assert parse_list(" 1, 2 ,3", "--x", int, minimum=1) == [1, 2, 3]
    assert parse_list("0.5,1", "--x", float, minimum=0, maximum=1, min_open=True) == [0.5, 1.0]
    assert parse_number("all", "--starts", int, also=("all",)) == "all" and parse_number("7", "--s", int) == 7
    assert check_number(None, "--n", minimum=1) is None and check_number(3, "--n", minimum=1) == 3
    for text, kw in [("", {}), ("1,,2", {}), ("1.5", {}), ("0", {"minimum": 0, "min_open": True}),
                     ("3", {"maximum": 2}), ("c", {"choices": ("a", "b")})]:
        kind = str if "choices" in kw else int
        with pytest.raises(ConfigError, match="--x"):
            parse_list(text, "--x", kind, **kw)
    with pytest.raises(ConfigError, match=r"--p: 0 is outside \(0, 1\]"):
        check_number(0, "--p", minimum=0, maximum=1, min_open=True)


# ---- device=cuda without CUDA ----------------------------------------------------------------------------------
def test_cuda_preset_without_cuda_is_one_line(tmp_path):
    out = tmp_path / "run"
    r = run_lmlab("lm", "train", "--preset", "gpt100m", "--out", str(out), env=NO_CUDA)
    one_line_error(r, "device=cuda but", "device=cpu")
    assert not out.exists()
    r = run_lmlab("acts", "harvest", "--layer", "1", "--out", str(out), "--device", "cuda", env=NO_CUDA)
    one_line_error(r, "device=cuda but")
    assert not out.exists()


# ---- models: the message keeps the real cause -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_hf_dirs(tmp_path_factory):
    """A tiny random Llama saved three ways: config only; weights but no tokenizer; a damaged tokenizer.json."""
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("hf")
    cfg = LlamaConfig(vocab_size=300, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=2)
    (root / "config_only").mkdir()
    cfg.save_pretrained(root / "config_only")
    model = LlamaForCausalLM(cfg)
    for name in ("no_tokenizer", "bad_tokenizer"):
        model.save_pretrained(root / name)
    (root / "bad_tokenizer" / "tokenizer.json").write_text('{"version": "1.0", "model": {"type": "nonsense"')
    return root


@pytest.mark.parametrize("name, needles", [
    ("config_only", ["has config.json but no weights", "model.safetensors"]),
    ("no_tokenizer", ["has no tokenizer", "tokenizer.json"]),
    ("bad_tokenizer", ["the tokenizer in", "cannot be loaded"]),
])
def test_model_dir_problems_name_the_cause(tiny_hf_dirs, name, needles):
    one_line_error(run_lmlab("lm", "generate", str(tiny_hf_dirs / name)), *needles)


def test_offline_hub_id_says_offline():
    r = run_lmlab("lm", "generate", "lmlab-test-org/no-such-model", env={"HF_HUB_OFFLINE": "1"})
    one_line_error(r, "unknown model 'lmlab-test-org/no-such-model'", "HF_HUB_OFFLINE")


def test_hub_and_disk_errors_keep_their_cause():
    """Gated, private/unknown, unreachable, full disk: the real huggingface_hub / HTTP classes, wrapped the way
    transformers wraps them (an OSError raised from the hub's error)."""
    import errno
    import importlib

    import huggingface_hub.errors as E

    import lmlab.models as M

    http = importlib.import_module(E.HfHubHTTPError.__mro__[1].__module__.split(".")[0])  # httpx (or its fork)
    resp = http.Response(403, request=http.Request("GET", "https://huggingface.co/o/m"))

    def wrapped(inner):
        try:
            try:
                raise inner
            except Exception as x:
                raise OSError("transformers: something went wrong") from x
        except OSError as o:
            return o

    cases = [(E.GatedRepoError("gated", response=resp), "is gated on the hub"),
             (E.RepositoryNotFoundError("404", response=resp), "no such repository on the hub"),
             (http.ConnectError("Name or service not known"), "the hub could not be reached (ConnectError"),
             (OSError(errno.ENOSPC, "No space left on device", "/cache/blob"), "No space left on device (/cache/blob)")]
    for inner, msg in cases:
        err = M._hub_error("o/m", wrapped(inner))
        assert err is not None and msg in str(err) and "\n" not in str(err), (inner, err)
    assert M._hub_error("o/m", TypeError("a bug")) is None  # bugs keep their traceback


# ---- missing input files, corpora whose documents are not what the user thinks ---------------------------------
def test_missing_records_file_is_one_line(tmp_path):
    out = tmp_path / "out"
    r = run_lmlab("eval", "contamination", "--task", "2D+", "--records", str(tmp_path / "2D+_k0.jsonl"),
                  "--out", str(out))
    one_line_error(r, "--records: no file", "2D+_k0.jsonl")
    assert not out.exists()


def test_txt_corpus_without_separators_is_one_document(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("\n\n".join(f"Paragraph {i} says something about topic {i % 7}." for i in range(3000)))
    out = tmp_path / "d"
    r = run_lmlab("data", "prepare", "--corpus", str(notes), "--out", str(out), "--vocab-size", "300")
    one_line_error(r, "notes.txt holds 1 document", "3000 paragraphs", "<|endoftext|>")
    assert not out.exists()
    few = tmp_path / "few.txt"
    few.write_text("\n<|endoftext|>\n".join(f"Document {i}." for i in range(5)))
    r = run_lmlab("data", "prepare", "--corpus", str(few), "--out", str(out), "--vocab-size", "300")
    one_line_error(r, "no held-out documents", "5 documents")
    assert not out.exists()


def test_failed_prepare_leaves_no_directory(tmp_path):
    corpus = tmp_path / "c.txt"  # enough documents that some are held out: the failure comes after mkdir
    corpus.write_text("\n<|endoftext|>\n".join(f"Document number {i} is short." for i in range(400)))
    out = tmp_path / "d"
    r = run_lmlab("data", "prepare", "--corpus", str(corpus), "--out", str(out), "--tokenizer",
                  str(tmp_path / "missing-tokenizer.json"))
    one_line_error(r, "missing-tokenizer.json")
    assert not out.exists()


# ---- the CLI root: bad input is one line, a bug keeps its traceback ---------------------------------------------
def _run_root_with(body: str):
    """Run lmlab.cli.main on a command `boom` whose body is `body` (a real subprocess, the real root)."""
    code = ("import errno, sys\nfrom lmlab import cli\n"
            f"def boom():\n    {body}\n"
            "cli.app.command('boom')(boom)\ncli.main(['boom'])\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_bug_keeps_its_traceback():
    r = _run_root_with("raise RuntimeError('a genuine bug')")
    assert r.returncode == 1 and "Traceback" in r.stderr and "RuntimeError: a genuine bug" in r.stderr


def test_disk_error_is_one_line_naming_a_traceback_file():
    from pathlib import Path

    r = _run_root_with("raise OSError(errno.ENOSPC, 'No space left on device', '/data/out/shard.bin')")
    line = one_line_error(r, "No space left on device: /data/out/shard.bin", "free disk space", "traceback: ")
    tb = Path(line.rsplit("traceback: ", 1)[1].rstrip(")"))
    assert "OSError" in tb.read_text()
    tb.unlink()

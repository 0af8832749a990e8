"""The run-directory layer every trainer uses (LM, GLP, and the trainers that come after them).

A run directory (DESIGN.md "Run directory") holds
    config.json     the resolved config, written once when the run starts
    metrics.jsonl   one JSON object per log step (eval rows carry "eval"); truncated to the checkpoint on resume
    runs.csv        one row per evaluation (runs/table.py), unless the config points a sweep at a shared file
    ckpt/           the last crash-safe checkpoint (runs/checkpoint.py)
    summary.json    the final figures: its presence marks a finished run
A trainer calls `start_run` first: a new run refuses a directory that already holds one; a resumed run must
carry the saved config exactly, and a mismatch names every field that changed. Then `lmlab.progress.train_bar`
for the bar, `due` for the log / eval / checkpoint cadence, and `checkpoint.save/load` for exact resume.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

CONFIG, METRICS, SUMMARY, RUNS_CSV = "config.json", "metrics.jsonl", "summary.json", "runs.csv"
FREE_ON_RESUME = frozenset({"log"})
"""Config fields (at any depth) a resume may change: views of the run (trackers), not what it computes."""


def start_run(out: Path, config: dict, resume: bool, runs_csv: Path, name: str, what: str = "run",
              restore: tuple | None = None, defaults: dict | None = None) -> int:
    """Check the run directory and return the step to start from (0 for a new run). torchrun-aware: rank 0
    writes, every rank returns the same step. A new run writes config.json and clears metrics.jsonl; a
    resumed one checks the config field by field, then rolls metrics.jsonl and runs.csv back to the step of
    its checkpoint (the steps after it are re-run and re-logged) and, given restore=(module, optimizer),
    loads the checkpoint into them. `defaults` (the config class's defaults as a dict): a field missing from an
    older run's config.json was added since, and that run used its default."""
    from lmlab import dist
    from lmlab.errors import ResumeMismatch
    from lmlab.io import read_json, write_json
    from lmlab.runs import checkpoint, table

    out = Path(out)
    if dist.is_main():
        checkpoint.clean_stale(out)
    ck = checkpoint.latest(out)
    if not resume:
        if ck is not None or (out / SUMMARY).exists():
            raise ResumeMismatch(f"{out} already holds a {what}", "pass --resume to continue it, or choose a new --out")
        if dist.is_main():
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / CONFIG, config)
            (out / METRICS).unlink(missing_ok=True)
        dist.barrier()
        return 0
    if ck is None:
        raise ResumeMismatch(f"--resume: {out} has no checkpoint", "drop --resume to start a new run there")
    diff = config_diff(read_json(out / CONFIG), config, defaults=defaults)
    if diff:
        raise ResumeMismatch(f"--resume: config differs from the saved {what} in {', '.join(diff)}",
                             "resume with the saved config (or start a new --out)")
    step = int(read_json(ck / "state.json")["step"])
    if dist.is_main():
        truncate_metrics(out / METRICS, step)
        table.drop_after(runs_csv, name, step)
    dist.barrier()
    if restore is not None:
        checkpoint.load(ck, *restore)
    return step


def config_diff(saved: dict, new: dict, prefix: str = "", defaults: dict | None = None) -> list[str]:
    """Every field whose value differs, as 'a.b (old -> new)', recursing into nested sections (FREE_ON_RESUME
    fields are not compared). A field absent from `saved` but present in `defaults` takes its default there."""
    out, defaults = [], defaults or {}
    for k in sorted(set(saved) | set(new)):
        if k in FREE_ON_RESUME:
            continue
        a, b = saved.get(k, defaults.get(k)), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += config_diff(a, b, f"{prefix}{k}.", defaults.get(k) if isinstance(defaults.get(k), dict) else None)
        elif a != b:
            out.append(f"{prefix}{k} ({a!r} -> {b!r})")
    return out


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the metrics rows of steps <= step (atomic rewrite)."""
    from lmlab.io import read_jsonl, write_text

    if path.exists():
        rows = [r for r in read_jsonl(path, own_log=True) if r.get("step", 0) <= step]
        write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def due(done: int, every: int, total: int) -> bool:
    """A cadence (log, eval, checkpoint): every `every` steps (0 = never) and always at the last step."""
    return (every > 0 and done % every == 0) or done == total


def run_name(out: Path, name: str | None = None) -> str:
    """The label of a run in runs.csv: the given name, else the run directory's name."""
    return name or Path(out).resolve().name


def checkpoint_steps(max_steps: int, per_decade: int = 4) -> list[int]:
    """Log-spaced evaluation steps (per_decade per decade: they feed loss-vs-compute fits), always including
    max_steps."""
    pts = {int(round(10 ** (k / per_decade))) for k in range(int(per_decade * math.log10(max_steps)) + 1)}
    return sorted(s for s in pts | {max_steps} if 1 <= s <= max_steps)


def train_loop(out: Path, steps: range, load, step_fn, *, batch_size: int, flops_per_sample: float, peak: float,
               log_every: int, ckpt_every: int, evals: set[int], on_eval, save, progress: bool,
               label: str = "train", tracker=None) -> dict:
    """The loop of the trainers on activation stores (GLP, SAE), torchrun-aware:
    batches load(s) prefetched one step ahead (`prefetch`); step_fn(s, batch) -> metrics (with "loss");
    a metrics.jsonl row every log_every steps and at eval steps, with throughput (samples/s, data wait included,
    evals and checkpoints excluded) and MFU = samples/s x flops_per_sample / peak; on_eval(done, metrics) -> the
    eval dict at the steps in `evals`; save(done) every ckpt_every steps and at the end (rank 0); the rows and
    eval dicts also go to `tracker` (runs.tracking.Tracker) when given. Returns the last eval dict."""
    import time

    from lmlab import dist
    from lmlab.io import append_jsonl
    from lmlab.progress import train_bar

    last: dict = {}
    total = steps.stop
    with train_bar(progress and dist.is_main(), total, steps.start, label) as bar:
        t0 = time.perf_counter()
        for s, batch in zip(steps, prefetch(load, steps)):
            m, done = step_fn(s, batch), s + 1
            sps = batch_size / max(time.perf_counter() - t0, 1e-9)
            row = {"step": done, **m, "tokens_per_sec": sps, "mfu": sps * flops_per_sample / peak}
            if dist.is_main() and (due(done, log_every, 0) or done in evals):
                append_jsonl(out / METRICS, row)
                if tracker is not None:
                    tracker.log(done, row)
            if done in evals and dist.is_main():
                last = on_eval(done, m)
                if tracker is not None:
                    tracker.log(done, last, "eval")
            if due(done, ckpt_every, total) and dist.is_main():
                save(done)
            dist.barrier()
            bar(done, row)
            t0 = time.perf_counter()  # evals and checkpoints are not counted as training time
    return last


def prefetch(load, steps, depth: int = 2):
    """Iterate load(step) for step in steps, computed `depth` steps ahead in a background thread: the memmap
    gather and the host->device copy overlap the training step. An exception in the loader is raised in the
    consumer's thread, never swallowed."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)

    def work():
        try:
            for s in steps:
                q.put(load(s))
        except BaseException as e:  # re-raised in the consumer below, never swallowed
            q.put(e)

    threading.Thread(target=work, daemon=True).start()
    for _ in steps:
        item = q.get()
        if isinstance(item, BaseException):
            raise item
        yield item

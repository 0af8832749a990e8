"""A grid of (task, K) evaluations written to a directory, resumable, and its in-context learning curve plot.

Each finished (task, K) is written whole as `<task>_k<K>.json` (summary) + `<task>_k<K>.jsonl` (per-example
records) before the next one starts, so a killed run resumes by skipping the finished cells.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from lmlab.evals.fewshot.evaluate import FewshotConfig, evaluate


def parse_list(text: str, what: str) -> list[str]:
    from lmlab.errors import ConfigError

    items = [x.strip() for x in str(text).split(",") if x.strip()]
    if not items:
        raise ConfigError(f"no {what} given", f"pass one or more {what}, comma-separated")
    return items


def parse_shots(text: str) -> list[int]:
    """The shot counts K of `--shots` ("0,1,10"): integers >= 0, at least one (the CLI's shared list parser)."""
    from lmlab.cli_options import parse_list as parse_values

    return parse_values(str(text), "--shots", int, minimum=0, example="0,1,10")


def cell_name(task: str, k: int) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "+-_." else "_" for ch in Path(task).stem)
    return f"{safe}_k{k}"


def run_grid(cfg: FewshotConfig, out: Path | None = None, loaded=None, progress: bool = False) -> list[dict]:
    """Evaluate every (task, K) of `cfg`; with `out`, write each cell and skip cells already written."""
    from lmlab.evals.fewshot.runner import HFRunner
    from lmlab.evals.fewshot.tasks import get_task
    from lmlab.io import append_jsonl, read_json, write_json

    tasks, ks = [get_task(t) for t in parse_list(cfg.tasks, "tasks")], parse_shots(cfg.shots)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "config.json", vars(cfg))
    runner = None
    results = []
    for task in tasks:
        for k in ks:
            path = out / f"{cell_name(task.name, k)}.json" if out is not None else None
            if path is not None and path.is_file():
                results.append(read_json(path))
                continue
            if runner is None:
                from lmlab.models import load_causal_lm

                model, tok = loaded or load_causal_lm(cfg.model)
                runner = HFRunner(model, tok, cfg.batch_size, cfg.max_length, progress=progress)
            t0 = time.time()
            summary, records = evaluate(task, runner, k, cfg)
            summary["model"] = cfg.model
            if path is not None:
                rec_path = path.with_suffix(".jsonl")
                tmp = rec_path.with_name(rec_path.name + ".tmp")
                tmp.unlink(missing_ok=True)
                for r in records:
                    append_jsonl(tmp, r)
                tmp.replace(rec_path)
                write_json(path, summary)  # written last: its presence marks the cell done
            _log(f"{task.name} K={k}: {summary['primary_metric']}="
                 f"{summary['metrics'][summary['primary_metric']]:.3f} (n={summary['n']}, {time.time() - t0:.0f}s)")
            results.append(summary)
    return results


def _log(msg: str) -> None:
    import sys

    print(msg, file=sys.stderr, flush=True)


def plot_curves(results: list[dict], out_png: Path, title: str = "in-context learning curves") -> Path:
    """Primary metric vs K per task, error bars = 95 % intervals (`score.metric_ci`: Wilson for accuracies and
    exact match, so never below 0 % or above 100 %; 1.96 standard errors for other metrics)."""
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    by_task: dict[str, list[dict]] = {}
    for r in results:
        by_task.setdefault(r["task"], []).append(r)
    for name, rows in by_task.items():
        rows = sorted(rows, key=lambda r: r["shots"])
        m = rows[0]["primary_metric"]
        xs = [r["shots"] for r in rows]
        ys = [100 * r["metrics"][m] for r in rows]
        cis = [[100 * v for v in _ci(r)] for r in rows]
        es = [[0 if math.isnan(lo) else y - lo for y, (lo, _) in zip(ys, cis)],
              [0 if math.isnan(hi) else hi - y for y, (_, hi) in zip(ys, cis)]]
        ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=f"{name} ({m})")
    ax.set_xscale("symlog", linthresh=1)
    ks = sorted({r["shots"] for r in results})
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.set_xlabel("number of examples in context K")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save_png(fig, out_png)


def curve_table(results: list[dict]) -> list[dict[str, Any]]:
    """Flat rows (task, K, metric, value, se, n, shots used) for JSON/markdown."""
    rows = []
    for r in results:
        m = r["primary_metric"]
        rows.append({"task": r["task"], "K": r["shots"], "metric": m, "value": r["metrics"][m], "se": r["se"][m],
                     "ci": _ci(r), "n": r["n"], "shots_used_mean": r["shots_used_mean"], "seconds": r["seconds"]})
    return rows


def _ci(summary: dict) -> list[float]:
    """95% interval of a cell's primary metric (Wilson for proportions; see score.metric_ci)."""
    from lmlab.evals.fewshot.score import metric_ci

    m = summary["primary_metric"]
    return metric_ci(m, summary["metrics"][m], summary["se"][m], summary["n"])

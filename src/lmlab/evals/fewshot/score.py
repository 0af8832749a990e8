"""Scores of few-shot answers, all computed from one pass of requests, with standard errors.

Multiple choice (one log-likelihood per choice, `acc_*` = 1 when the argmax is the gold choice):

| metric       | argmax of                       | who uses it                                              |
|--------------|---------------------------------|----------------------------------------------------------|
| `acc`        | sum log p(choice | prompt)      | lm-eval `acc`                                            |
| `acc_token`  | sum log p / number of tokens    | GPT-3 §2.4, "most tasks"                                 |
| `acc_char`   | sum log p / characters          | lm-eval `acc_norm` (characters of the choice text)       |
| `acc_byte`   | sum log p / UTF-8 bytes         | lm-eval `acc_bytes`                                      |
| `acc_uncond` | log p(c|prompt) - log p(c|"Answer:") | GPT-3 ARC/OpenBookQA/RACE; lm-eval `acc_mutual_info` uses an empty context |

Ties go to the first choice (numpy argmax, as lm-eval). Generation: `exact_match` (whitespace-stripped
equality) and SQuAD token `f1`. Cloze: `acc` = the gold continuation is the greedy one (GPT-3 LAMBADA),
`perplexity` = exp(-sum log p / sum tokens). Rolling: word/byte perplexity and bits per byte.

Standard errors: closed form for means (sample std with ddof=1 over sqrt(n), as lm-eval); a seeded bootstrap
for ratios (perplexities, bits per byte). 95% intervals (`metric_ci`): Wilson for proportions (`acc*`,
`exact_match`: 0/1 per example), never p ± 1.96 se, which leaves [0, 1]; value ± 1.96 se for the rest.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Callable, Sequence

MC_METRICS = ("acc", "acc_token", "acc_char", "acc_byte", "acc_uncond")
PROPORTION_METRICS = (*MC_METRICS, "exact_match")
"""Metrics that are 0/1 per example, so their mean is a proportion (Wilson interval)."""


def mc_predictions(lls: Sequence[float], n_tokens: Sequence[int], choices: Sequence[str],
                   lls_uncond: Sequence[float] | None = None) -> dict[str, int]:
    """Index picked by each normalisation (first index on ties)."""
    preds = {
        "acc": _argmax(lls),
        "acc_token": _argmax([ll / n for ll, n in zip(lls, n_tokens)]),
        "acc_char": _argmax([ll / max(len(c), 1) for ll, c in zip(lls, choices)]),
        "acc_byte": _argmax([ll / max(len(c.encode("utf-8")), 1) for ll, c in zip(lls, choices)]),
    }
    if lls_uncond is not None:
        preds["acc_uncond"] = _argmax([a - b for a, b in zip(lls, lls_uncond)])
    return preds


def _argmax(xs: Sequence[float]) -> int:
    best = 0
    for i, x in enumerate(xs):
        if x > xs[best]:
            best = i
    return best


def exact_match(pred: str, gold: str) -> float:
    return float(pred.strip() == gold.strip())


def _squad_tokens(s: str) -> list[str]:
    s = "".join(ch for ch in s.lower() if ch not in set(string.punctuation))
    return re.sub(r"\b(a|an|the)\b", " ", s).split()


def f1(pred: str, gold: str) -> float:
    """SQuAD token F1 (lowercase, no punctuation, no articles)."""
    p, g = _squad_tokens(pred), _squad_tokens(gold)
    if not p or not g:
        return float(p == g)
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    prec, rec = common / len(p), common / len(g)
    return 2 * prec * rec / (prec + rec)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its closed-form standard error (sample std, ddof=1, over sqrt(n))."""
    n = len(values)
    if n == 0:
        return float("nan"), float("nan")
    m = sum(values) / n
    if n == 1:
        return m, float("nan")
    var = sum((v - m) ** 2 for v in values) / (n - 1)
    return m, math.sqrt(var / n)


def metric_ci(metric: str, value: float, se: float, n: int, z: float = 1.96) -> list[float]:
    """95% interval of an aggregated metric over n examples: Wilson for proportions (PROPORTION_METRICS),
    value ± z·se otherwise (clipped to [0, 1] for f1); [nan, nan] when there is nothing to go on."""
    from lmlab.stats import wilson_ci

    if metric in PROPORTION_METRICS:
        return wilson_ci(value, n, z)
    if se is None or math.isnan(se) or math.isnan(value):
        return [math.nan, math.nan]
    lo, hi = value - z * se, value + z * se
    return [max(lo, 0.0), min(hi, 1.0)] if metric == "f1" else [lo, hi]


def bootstrap_se(rows: Sequence, stat: Callable[[Sequence], float], iters: int = 1000, seed: int = 0) -> float:
    """Std of `stat` over `iters` resamples of `rows` with replacement (seeded)."""
    import random

    if len(rows) < 2:
        return float("nan")
    rng = random.Random(seed)
    reps = [stat([rows[rng.randrange(len(rows))] for _ in rows]) for _ in range(iters)]
    m = sum(reps) / iters
    return math.sqrt(sum((r - m) ** 2 for r in reps) / (iters - 1))


def token_perplexity(rows: Sequence[tuple[float, int]]) -> float:
    """exp(-sum log p / sum tokens) over (logprob, n_tokens) rows."""
    return math.exp(-sum(r[0] for r in rows) / max(sum(r[1] for r in rows), 1))


def aggregate(records: Sequence[dict], metrics: Sequence[str]) -> dict[str, dict[str, float]]:
    """{metric: {"value", "se"}} from per-example records (each record holds its metric values)."""
    out = {}
    for m in metrics:
        if m == "perplexity":
            rows = [(r["logprob"], r["n_tokens"]) for r in records]
            out[m] = {"value": token_perplexity(rows), "se": bootstrap_se(rows, token_perplexity)}
        elif m in ("bits_per_byte", "byte_perplexity", "word_perplexity"):
            rows = [(r["logprob"], r["n_bytes"], r["n_words"]) for r in records]
            fn = _ROLLING[m]
            out[m] = {"value": fn(rows), "se": bootstrap_se(rows, fn)}
        else:
            vals = [r[m] for r in records if m in r]
            v, se = mean_se(vals)
            out[m] = {"value": v, "se": se}
    return out


_ROLLING = {
    "bits_per_byte": lambda rows: -sum(r[0] for r in rows) / max(sum(r[1] for r in rows), 1) / math.log(2),
    "byte_perplexity": lambda rows: math.exp(-sum(r[0] for r in rows) / max(sum(r[1] for r in rows), 1)),
    "word_perplexity": lambda rows: math.exp(-sum(r[0] for r in rows) / max(sum(r[2] for r in rows), 1)),
}

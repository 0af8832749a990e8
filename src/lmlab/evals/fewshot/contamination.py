"""Benchmark contamination by GPT-3's rule (Brown et al. 2020, §4 and Appendix C).

Words are lower-case, punctuation-free, whitespace-delimited. N = the 5th-percentile example length in words,
clamped to [8, 13] (GPT-3 lets synthetic tasks go below 8; `min_n` does the same here). An example is *dirty*
if any of its N-grams occurs anywhere in the training corpus; examples shorter than N words have no N-gram and
count as clean. Scores are then reported on the clean subset with the relative change vs all examples
(GPT-3 Table C.1: > 1-2 % worse on clean suggests the model benefited from contamination).

The scan streams the training corpus once and keeps only the evaluation N-grams in memory (a corpus window is
joined into a string only when its first word starts some evaluation N-gram).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

_PUNCT = re.compile(r"[^\w\s]|_")


def gpt3_words(text: str) -> list[str]:
    """Lower-case, punctuation removed, split on whitespace."""
    return _PUNCT.sub("", text.lower()).split()


def choose_n(lengths: Sequence[int], min_n: int = 8, max_n: int = 13) -> int:
    """GPT-3's N: the 5th percentile of example lengths in words, clamped to [min_n, max_n]."""
    if not lengths:
        return max_n
    s = sorted(lengths)
    p5 = s[min(len(s) - 1, max(0, math.ceil(0.05 * len(s)) - 1))]  # nearest-rank percentile
    return max(min_n, min(max_n, p5))


def dirty_flags(texts: Sequence[str], corpus: Iterable[str], n: int | None = None, min_n: int = 8,
                max_n: int = 13) -> tuple[list[bool], int, dict]:
    """(dirty per example, N, info) for evaluation `texts` against the training `corpus` texts."""
    words = [gpt3_words(t) for t in texts]
    n = n or choose_n([len(w) for w in words], min_n, max_n)
    owners: dict[str, list[int]] = {}
    for i, ws in enumerate(words):
        for j in range(len(ws) - n + 1):
            owners.setdefault(" ".join(ws[j:j + n]), []).append(i)
    firsts = {g.split(" ", 1)[0] for g in owners}
    dirty = [False] * len(texts)
    hits: dict[str, int] = {}
    n_docs = n_words = 0
    for doc in corpus:
        ws = gpt3_words(doc)
        n_docs += 1
        n_words += len(ws)
        for j in range(len(ws) - n + 1):
            if ws[j] in firsts and (g := " ".join(ws[j:j + n])) in owners:
                hits[g] = hits.get(g, 0) + 1
                for i in owners[g]:
                    dirty[i] = True
    info = {"n": n, "examples": len(texts), "dirty": sum(dirty), "clean_fraction": 1 - sum(dirty) / max(len(texts), 1),
            "shorter_than_n": sum(len(w) < n for w in words), "corpus_docs": n_docs, "corpus_words": n_words,
            "top_ngrams": sorted(hits.items(), key=lambda kv: -kv[1])[:10]}
    return dirty, n, info


def example_texts(task, limit: int | None = None) -> list[str]:
    """The text of each evaluated example: prompt + answer (GPT-3 checked the whole example)."""
    docs = task.docs(task.spec.eval_split)
    docs = docs[:limit] if limit else docs
    return [task.prompt(d, i) + task.spec.target_delimiter + task.target(d, i) for i, d in enumerate(docs)]


def clean_scores(records: Sequence[dict], dirty: Sequence[bool], metric: str) -> dict:
    """Metric on all / clean / dirty examples and the relative change clean vs all (GPT-3 Table C.1)."""
    from lmlab.evals.fewshot.score import mean_se

    def part(keep):
        vals = [r[metric] for r, d in zip(records, dirty) if keep(d)]
        m, se = mean_se(vals)
        return {"value": m, "se": se, "n": len(vals)}

    all_, clean, dirt = part(lambda d: True), part(lambda d: not d), part(lambda d: d)
    rel = (clean["value"] - all_["value"]) / all_["value"] if all_["value"] else float("nan")
    return {"metric": metric, "all": all_, "clean": clean, "dirty": dirt, "relative_change": rel}

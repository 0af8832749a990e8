"""Degeneration measures of a steered continuation (issue 19): the unsteered-model NLL alone rewards loops,
because a newline or punctuation run is predictable, so the frontier also reads these.

    distinct-n   unique token n-grams / token n-grams (Li et al. 2016, "A Diversity-Promoting Objective"), n = 1, 2
    repetition   fraction of the continuation's tokens that end a token n-gram (n = REP_N = 3) already seen
                 earlier in the same continuation (the "seq-rep-n" family of Welleck et al. 2020)
    word_frac    fraction of whitespace-separated words that are alphabetic with >= 2 letters (issue 5)
    blank_frac   fraction of the text's characters that are not letters or digits (whitespace, punctuation):
                 the tokenizer merges a newline run into ONE token, so token n-grams alone can miss it
    fluent       the one pass/fail rule (FLUENT_RULE): repetition <= 0.25, distinct-2 >= 0.5, word_frac >= 0.6
                 and blank_frac <= 0.4. A "\\n\\n\\n..." or ",,,," loop fails it; an ordinary sentence passes
                 (English prose: ~0.2 blank). Written for prose concepts: code-like text (the python concept) has
                 a higher blank_frac.
"""

from __future__ import annotations

REP_N = 3
FLUENT_RULE = {"repetition_max": 0.25, "distinct2_min": 0.5, "word_frac_min": 0.6, "blank_frac_max": 0.4}


def distinct_n(tokens: list[int], n: int) -> float:
    """Unique n-grams / n-grams of a token list (1.0 for a list shorter than n: nothing repeats)."""
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def repetition_rate(tokens: list[int], n: int = REP_N) -> float:
    """Fraction of tokens (over all of them) that complete an n-gram already seen earlier in the list."""
    seen, rep = set(), 0
    for i in range(n - 1, len(tokens)):
        g = tuple(tokens[i - n + 1:i + 1])
        rep += g in seen
        seen.add(g)
    return rep / len(tokens) if tokens else 0.0


def word_frac(text: str) -> float:
    """Fraction of whitespace-separated words (edge punctuation stripped) that are alphabetic, >= 2 letters."""
    words = [x.strip(".,;:!?\"'()[]") for x in text.split()]
    return sum(len(x) > 1 and x.isalpha() for x in words) / max(1, len(words))


def blank_frac(text: str) -> float:
    """Fraction of characters that are neither letters nor digits (1.0 for an empty text)."""
    return sum(not ch.isalnum() for ch in text) / len(text) if text else 1.0


def is_fluent(rep: float, d2: float, wf: float, bf: float, rule: dict = FLUENT_RULE) -> bool:
    """FLUENT_RULE: not repetitive, not a loop of a few n-grams, made of words, not mostly blanks/punctuation."""
    return (rep <= rule["repetition_max"] and d2 >= rule["distinct2_min"] and wf >= rule["word_frac_min"]
            and bf <= rule["blank_frac_max"])


def quality(tokens: list[int], text: str) -> dict[str, float]:
    """All degeneration measures of one continuation (its token ids and decoded text)."""
    rep, d2, wf, bf = repetition_rate(tokens), distinct_n(tokens, 2), word_frac(text), blank_frac(text)
    return {"distinct1": distinct_n(tokens, 1), "distinct2": d2, "repetition": rep, "word_frac": wf,
            "blank_frac": bf, "fluent": float(is_fluent(rep, d2, wf, bf))}

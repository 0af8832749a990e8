"""Built-in generated tasks, to GPT-3's specifications (Brown et al. 2020, §3.9.1, §3.9.2, §3.1.2).

- Arithmetic (§3.9.1): 2D+, 2D-, 3D+, 3D-, 4D+, 4D-, 5D+, 5D-, 2Dx, 1DC; 2,000 problems each, seeded. Operands
  uniform in [0, 10^d); subtraction may be negative; 2Dx multiplies two numbers in [0, 100); 1DC draws three
  digits and two operators from {+, -, *} with parentheses around the last two ("6+(4*8)"). Format as the
  released openai/gpt-3 data: "Q: What is 98 plus 45?\\n\\nA:" -> " 143", examples separated by "\\n\\n", and
  the exact answer must be generated (greedy until a newline).
- Word unscrambling (§3.9.2): CL (cycled letters), A1 (anagram of all but the first and last letter), A2 (all
  but the first two and last two), RI (random punctuation/space inserted between letters), RW (reversed). Words:
  GPT-3 took the 10,000 most frequent words of length > 4 and < 15; here they are counted in the embedded
  corpus's train split (GCIDE + Python docs; see docs/fewshot.md for licences). Prompt (GPT-3 Fig. G.19 and the
  K-shot example of §3.9.2): "Please unscramble the letters into a word, and write that word:\\n" once, then
  "asinoc = casino" lines separated by "\\n".
- cloze / cloze_blank: LAMBADA-style last word of held-out passages of the embedded corpus (val split; shots
  from train passages). `cloze` is the plain zero-shot format; `cloze_blank` GPT-3's few-shot fill-in-blank
  framing "... ____. -> word".
- domain_mc: multiple choice on lmlab's labelled data: which source (general dictionary / medical dictionary /
  Python documentation) a passage of the embedded corpus comes from.
"""

from __future__ import annotations

import random
import re
from collections import Counter

from lmlab.evals.fewshot.tasks import Task, TaskSpec, register

N_ARITH = 2000  # GPT-3: 2,000 random instances per arithmetic task
ARITH_SEED, POOL_SEED = 1234, 4321  # evaluated problems / few-shot pool problems (independent draws)
OPS = {"+": "plus", "-": "minus", "x": "times"}
ARITH = {f"{d}D{o}": (d, o) for d in (2, 3, 4, 5) for o in "+-"} | {"2Dx": (2, "x"), "1DC": (1, "C")}
N_WORDS = 10_000  # GPT-3: the 10,000 most frequent words of length 5..14
UNSCRAMBLE = ("CL", "A1", "A2", "RI", "RW")
UNSCRAMBLE_PROMPT = "Please unscramble the letters into a word, and write that word:\n"
RI_CHARS = ".!/,;:?- "  # inserted between letters in RI (GPT-3's example uses . ! / and spaces)
WORDS_VERSION = 1


# --- arithmetic -----------------------------------------------------------------------------------------


def arithmetic_problem(rng: random.Random, digits: int, op: str) -> dict:
    """One problem in GPT-3's wording: {"question": "What is 48 plus 76?", "answer": "124"}."""
    if op == "C":  # 1DC: three single digits, two operators, parentheses around the last two
        a, b, c = (rng.randrange(10) for _ in range(3))
        o1, o2 = rng.choice("+-*"), rng.choice("+-*")
        expr = f"{a}{o1}({b}{o2}{c})"
        return {"question": f"What is {expr}?", "answer": str(eval(expr))}  # digits and + - * only
    hi = 10 ** digits
    a, b = rng.randrange(hi), rng.randrange(hi)
    value = {"+": a + b, "-": a - b, "x": a * b}[op]
    return {"question": f"What is {a} {OPS[op]} {b}?", "answer": str(value)}


def arithmetic_docs(name: str, n: int = N_ARITH, seed: int = ARITH_SEED) -> list[dict]:
    digits, op = ARITH[name]
    rng = random.Random(f"{name}:{seed}")
    return [arithmetic_problem(rng, digits, op) for _ in range(n)]


@register(*ARITH)
def _arithmetic_task(name: str) -> Task:
    spec = TaskSpec(name=name, output_type="generate_until", template="Q: {question}\n\nA:", target="{answer}",
                    fewshot_delimiter="\n\n", until=["\n"], max_gen_toks=10, primary_metric="exact_match")
    seeds = {"test": ARITH_SEED, "train": POOL_SEED}
    return Task(spec, lambda split: arithmetic_docs(name, seed=seeds[split]))


# --- word unscrambling ----------------------------------------------------------------------------------


def scramble(word: str, kind: str, rng: random.Random) -> str:
    """GPT-3's five word manipulations (§3.9.2)."""
    if kind == "RW":
        return word[::-1]
    if kind == "CL":
        i = rng.randrange(1, len(word))
        return word[i:] + word[:i]
    if kind == "RI":
        gaps = [rng.choice(RI_CHARS) if rng.random() < 0.7 else "" for _ in word[1:]]
        if not any(gaps):
            gaps[rng.randrange(len(gaps))] = rng.choice(RI_CHARS)
        return word[0] + "".join(g + ch for g, ch in zip(gaps, word[1:]))
    keep = {"A1": 1, "A2": 2}[kind]
    mid = list(word[keep:-keep])
    for _ in range(10):  # an anagram equal to the word would be no task
        rng.shuffle(mid)
        if "".join(mid) != word[keep:-keep]:
            break
    return word[:keep] + "".join(mid) + word[-keep:]


def frequent_words(n: int = N_WORDS) -> list[str]:
    """The n most frequent lowercase alphabetic words of length 5..14 in the embedded train split (cached)."""
    import json

    from lmlab.data.corpus import cache_root, iter_documents
    from lmlab.io import write_json

    path = cache_root() / "fewshot" / f"words-v{WORDS_VERSION}-{n}.json"
    if path.is_file():
        return json.loads(path.read_text())
    counts: Counter = Counter()
    word = re.compile(r"\b[a-z]{5,14}\b")
    for doc in iter_documents("embedded", "train"):
        counts.update(word.findall(doc.text))  # lowercase only: capitalised forms are headwords/names
    words = [w for w, _ in counts.most_common(n)]
    write_json(path, words)
    return words


def unscramble_docs(kind: str, split: str, words: list[str] | None = None, seed: int = ARITH_SEED) -> list[dict]:
    """80 % of the words (seeded) are evaluated, 20 % are the few-shot pool: a shot never shows the query word."""
    words = list(words if words is not None else frequent_words())
    random.Random(seed).shuffle(words)
    cut = int(0.8 * len(words))
    chosen = words[:cut] if split == "test" else words[cut:]
    rng = random.Random(f"{kind}:{split}:{seed}")
    return [{"scrambled": scramble(w, kind, rng), "word": w} for w in chosen]


@register(*UNSCRAMBLE)
def _unscramble_task(name: str) -> Task:
    spec = TaskSpec(name=name, output_type="generate_until", description=UNSCRAMBLE_PROMPT,
                    template="{scrambled} =", target="{word}", fewshot_delimiter="\n", until=["\n"],
                    max_gen_toks=16, primary_metric="exact_match")
    return Task(spec, lambda split: unscramble_docs(name, split))


# --- cloze (LAMBADA-style) ------------------------------------------------------------------------------

CLOZE_WORDS = (20, 80)  # passage length range in words
_SENT_END = re.compile(r"(?<=[a-z]{3})\.(?=\s|$)")


def cloze_passages(split: str, limit: int | None = None) -> list[dict]:
    """{"context", "word"}: a passage of 20-80 words ending a sentence; the last word is the target.

    Passages come from the embedded corpus's general and python domains; the target is a lowercase
    alphabetic word of >= 3 letters, and the sentence-final period is dropped (as in LAMBADA)."""
    from lmlab.data.corpus import iter_documents

    out = []
    for doc in iter_documents("embedded", "val" if split == "test" else "train", domains=["general", "python"]):
        text = " ".join(doc.text.split())
        ends = [m.start() for m in _SENT_END.finditer(text)]
        for end in reversed(ends):
            words = text[:end].split(" ")
            if CLOZE_WORDS[0] <= len(words) <= CLOZE_WORDS[1] and re.fullmatch(r"[a-z]{3,}", words[-1]):
                out.append({"context": " ".join(words[:-1]), "word": words[-1], "doc": doc.id})
                break
        if limit and len(out) >= limit:
            break
    return out


@register("cloze", "cloze_blank")
def _cloze_task(name: str) -> Task:
    blank = name == "cloze_blank"  # GPT-3 §3.1.2: "Alice was friends with Bob. Alice went to visit her friend ___. -> Bob"
    spec = TaskSpec(name=name, output_type="loglikelihood",
                    template="{context} ____. ->" if blank else "{context}", target="{word}",
                    fewshot_delimiter="\n\n", primary_metric="acc")
    return Task(spec, lambda split: cloze_passages(split, limit=None if split == "test" else 2000))


# --- multiple choice on the corpus's domain labels -----------------------------------------------------

DOMAIN_CHOICES = {"general": "a general English dictionary", "medical": "a medical dictionary",
                  "python": "the Python documentation"}
MC_CHARS = 240


def domain_mc_docs(split: str, per_domain: int = 120, seed: int = ARITH_SEED) -> list[dict]:
    """Balanced passages (first ~240 characters) with their source as the gold choice."""
    from lmlab.data.corpus import iter_documents

    rng = random.Random(f"domain_mc:{split}:{seed}")
    pools: dict[str, list] = {d: [] for d in DOMAIN_CHOICES}
    cap = 4 * per_domain  # enough to sample from without reading the whole train split
    for doc in iter_documents("embedded", "val" if split == "test" else "train"):
        if len(pools[doc.domain]) < cap:
            pools[doc.domain].append(doc)
        if all(len(p) >= cap for p in pools.values()):
            break
    docs = []
    for i, pool in enumerate(pools.values()):
        for doc in rng.sample(pool, min(per_domain, len(pool))):
            text = " ".join(doc.text.split())
            passage = text if len(text) <= MC_CHARS else text[:MC_CHARS].rsplit(" ", 1)[0] + " ..."
            docs.append({"passage": passage, "choices": list(DOMAIN_CHOICES.values()), "label": i, "doc": doc.id})
    rng.shuffle(docs)
    return docs


@register("domain_mc")
def _domain_task(name: str) -> Task:
    spec = TaskSpec(name=name, output_type="multiple_choice", template="Passage: {passage}\nSource:",
                    choices="choices", gold="label", fewshot_delimiter="\n\n", answer_context="Source:",
                    primary_metric="acc")
    return Task(spec, lambda split: domain_mc_docs(split))

"""Generated tasks reproduce GPT-3's specifications and prompt format (Brown et al. 2020, §3.9, App. G)."""

from __future__ import annotations

import random
import re

from fs_fixtures import tiny_llama

from lmlab.evals.fewshot import generators as G
from lmlab.evals.fewshot.evaluate import build_prompts
from lmlab.evals.fewshot.runner import HFRunner
from lmlab.evals.fewshot.tasks import Task, get_task

ARITH_RE = {
    "+": re.compile(r"What is (\d+) plus (\d+)\?"), "-": re.compile(r"What is (\d+) minus (\d+)\?"),
    "x": re.compile(r"What is (\d+) times (\d+)\?"),
}


def test_arithmetic_problems_follow_gpt3():
    for name, (digits, op) in G.ARITH.items():
        docs = G.arithmetic_docs(name)
        assert len(docs) == 2000 and docs == G.arithmetic_docs(name)  # 2,000 each, seeded
        for d in docs[:300]:
            if op == "C":
                expr = re.fullmatch(r"What is (\d[-+*]\(\d[-+*]\d\))\?", d["question"]).group(1)
                assert int(d["answer"]) == eval(expr)
                continue
            a, b = map(int, ARITH_RE[op].fullmatch(d["question"]).groups())
            assert a < 10 ** digits and b < 10 ** digits
            assert int(d["answer"]) == {"+": a + b, "-": a - b, "x": a * b}[op]
    assert any(int(d["answer"]) < 0 for d in G.arithmetic_docs("2D-"))  # subtraction may be negative
    assert G.arithmetic_docs("2D+") != G.arithmetic_docs("2D+", seed=G.POOL_SEED)


def test_arithmetic_prompt_is_gpt3s_released_format():
    # openai/gpt-3 data/two_digit_addition.jsonl: context "\n\nQ: What is 98 plus 45?\n\nA:", completion " 143"
    task = get_task("2D+")
    doc = {"question": "What is 98 plus 45?", "answer": "143"}
    assert task.prompt(doc, 0) + task.spec.target_delimiter + task.target(doc, 0) == "Q: What is 98 plus 45?\n\nA: 143"
    model, tok = tiny_llama()
    p = build_prompts(task, HFRunner(model, tok), k=2, limit=1)[0]
    shots = re.findall(r"Q: What is \d+ plus \d+\?\n\nA: -?\d+\n\n", p.context)
    assert len(shots) == 2 and p.context == "".join(shots) + task.prompt(task.docs("test")[0], 0)


def test_scrambles_follow_gpt3():
    rng = random.Random(0)
    for w in ["inevitably", "corruption", "opponent", "succession", "objects"]:
        cl = G.scramble(w, "CL", rng)
        assert cl != w and cl in w + w and len(cl) == len(w)  # a rotation
        a1 = G.scramble(w, "A1", rng)
        assert a1[0] == w[0] and a1[-1] == w[-1] and sorted(a1) == sorted(w) and a1 != w
        a2 = G.scramble(w, "A2", rng)
        assert a2[:2] == w[:2] and a2[-2:] == w[-2:] and sorted(a2) == sorted(w)
        ri = G.scramble(w, "RI", rng)
        assert ri != w and "".join(ch for ch in ri if ch.isalpha()) == w and ri[0] == w[0]
        assert G.scramble(w, "RW", rng) == w[::-1]


def test_unscramble_prompt_is_gpt3s_format():
    # GPT-3 §3.9.2 / Fig. G.19: "Please unscramble the letters into a word, and write that word:\nasinoc = casino\n..."
    words = ["casino", "froggy", "simple", "biggest", "roasted"] * 4
    task = Task(get_task("CL").spec, lambda split: G.unscramble_docs("CL", split, words))
    model, tok = tiny_llama()
    p = build_prompts(task, HFRunner(model, tok), k=3, limit=1)[0]
    lines = p.context.split("\n")
    assert lines[0] == "Please unscramble the letters into a word, and write that word:"
    assert all(re.fullmatch(r"[a-z]+ = [a-z]+", ln) for ln in lines[1:4]) and re.fullmatch(r"[a-z]+ =", lines[4])


def test_frequent_words_are_gpt3_lengths():
    words = G.frequent_words()
    assert len(words) == G.N_WORDS and all(4 < len(w) < 15 and w.isalpha() for w in words)


def test_corpus_tasks_are_well_formed():
    cloze = get_task("cloze").docs("test")
    assert len(cloze) > 500 and all(re.fullmatch(r"[a-z]{3,}", d["word"]) for d in cloze)
    blank = get_task("cloze_blank")
    assert blank.prompt(cloze[0], 0).endswith(" ____. ->")
    mc = get_task("domain_mc")
    docs = mc.docs("test")
    assert {d["label"] for d in docs} == {0, 1, 2} and all(len(d["choices"]) == 3 for d in docs)
    train_ids = {d["doc"] for d in mc.docs("train")}
    assert not train_ids & {d["doc"] for d in docs}  # evaluated passages are held out

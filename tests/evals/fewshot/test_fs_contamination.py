"""GPT-3's contamination rule on a planted overlap (Brown et al. 2020, Appendix C)."""

from __future__ import annotations

import json

import pytest
from conftest import run_lmlab

from lmlab.evals.fewshot.contamination import choose_n, clean_scores, dirty_flags, gpt3_words

EXAMPLES = [
    "The quick brown fox jumps over the lazy dog near the quiet river bank today.",  # planted below
    "A completely different sentence about gardens, roses and tulips in the early spring morning.",
    "Numbers like seven and eleven appear in this example with other plain words to pad it out.",
    "Short one.",
]


def test_words_are_lowercase_without_punctuation():
    assert gpt3_words("Hello, World! It's e-mail.") == ["hello", "world", "its", "email"]


def test_n_is_the_clamped_5th_percentile():
    assert choose_n([20] * 100) == 13 and choose_n([3] * 100) == 8 and choose_n([10] * 100) == 10
    assert choose_n([3] * 100, min_n=2) == 3
    assert choose_n([5] + [30] * 19) == 8  # nearest rank: the 5th percentile of 20 lengths is the smallest


def test_planted_overlap_is_dirty():
    corpus = ["unrelated text " * 20,
              "...and then THE QUICK brown fox, jumps over the lazy dog near the quiet -- river bank; later..."]
    dirty, n, info = dirty_flags(EXAMPLES, corpus, n=13)
    assert n == 13 and dirty == [True, False, False, False]
    assert info["shorter_than_n"] == 1 and info["corpus_docs"] == 2
    # a 12-word overlap is not a 13-gram collision
    dirty, _, _ = dirty_flags(EXAMPLES, ["quick brown fox jumps over the lazy dog near the quiet river"], n=13)
    assert dirty == [False] * 4


def test_clean_subset_scores_and_relative_change():
    records = [{"acc": 1.0}, {"acc": 1.0}, {"acc": 0.0}, {"acc": 0.0}]
    s = clean_scores(records, [True, True, False, False], "acc")
    assert s["all"]["value"] == 0.5 and s["clean"]["value"] == 0.0 and s["dirty"]["n"] == 2
    assert s["relative_change"] == pytest.approx(-1.0)


def _task(tmp_path):
    """A local YAML task over EXAMPLES (test split only)."""
    task = tmp_path / "t"
    task.mkdir()
    docs = [{"text": e, "answer": "x"} for e in EXAMPLES]
    (task / "test.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (task / "task.yaml").write_text("output_type: loglikelihood\ntemplate: '{text}'\nfewshot_split: test\n"
                                    "data: {test: test.jsonl}\n")
    return task


def test_cli_on_a_local_corpus(tmp_path):
    task = _task(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("intro words here. " + EXAMPLES[1].upper() + " outro words\n")
    r = run_lmlab("eval", "contamination", "--task", str(task / "task.yaml"), "--corpus", str(corpus), "--json",
                  check=True)
    out = json.loads(r.stdout)
    assert out["dirty"] == 1 and out["n"] == 8 and out["examples"] == 4


def test_cli_scores_clean_subset_from_records(tmp_path):
    task = _task(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(EXAMPLES[0] + "\n")
    rec = tmp_path / "t_k0.jsonl"
    rec.write_text("".join(json.dumps({"i": i, "acc": a}) + "\n" for i, a in enumerate([1.0, 0.0, 1.0, 0.0])))
    (tmp_path / "t_k0.json").write_text(json.dumps({"shots": 0, "primary_metric": "acc"}))
    r = run_lmlab("eval", "contamination", "--task", str(task / "task.yaml"), "--corpus", str(corpus),
                  "--records", str(rec), "--json", check=True)
    s = json.loads(r.stdout)["scores"]
    assert s["all"]["value"] == 0.5 and s["clean"]["value"] == pytest.approx(1 / 3) and s["dirty"]["n"] == 1

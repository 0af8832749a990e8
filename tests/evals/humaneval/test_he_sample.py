"""Sampling: stop sequences, the OpenAI-compatible HTTP backend against a local server started here, the
reranked pass@1, resume, and (slow) the local HF backend on SmolLM2."""

from __future__ import annotations

import json
import threading
import typing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lmlab.evals.humaneval import data
from lmlab.evals.humaneval.run import EvalConfig
from lmlab.evals.humaneval.sample import STOP, SampleConfig, cut_at_stop, sample_and_evaluate

P = data.load_problems()
BY_PROMPT = {p["prompt"]: p for p in P.values()}


def test_cut_at_stop():
    assert cut_at_stop("    return 1\n\ndef g():\n    pass", STOP) == "    return 1\n"
    assert cut_at_stop("    x = 1\n    # ok\n    return x\nprint(x)", STOP) == "    x = 1\n    # ok\n    return x"
    assert cut_at_stop("    return 2", STOP) == "    return 2"
    assert cut_at_stop("\nif x:", STOP) == ""


class FakeServer(BaseHTTPRequestHandler):
    """/v1/completions: choice 0 is the canonical solution (+ junk after a stop sequence) with the best
    log-probs; the others are wrong. Records every request body."""

    requests: typing.ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeServer.requests.append((self.path, body))
        p = BY_PROMPT[body["prompt"]]
        choices = []
        for i in range(body["n"]):
            text = p["canonical_solution"] + "\ndef unrelated():\n    pass\n" if i == 0 else "    return None\n"
            choices.append({"index": i, "text": text,
                            "logprobs": {"token_logprobs": [-0.1, -0.2] if i == 0 else [-1.0, -2.0, -0.5]}})
        out = json.dumps({"choices": choices}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    FakeServer.requests = []
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_openai_backend_end_to_end_with_reranking_and_resume(server, tmp_path):
    cfg = SampleConfig(model="fake", n=4, temperature=0.8, backend="openai", base_url=server, limit=5,
                       batch_size=20, eval=EvalConfig(k=[1, 4], workers=2))  # one request (n=4) per problem
    out = sample_and_evaluate(cfg, tmp_path)
    path, body = FakeServer.requests[0]
    assert path == "/v1/completions" and body["stop"] == STOP and body["top_p"] == 0.95 and body["logprobs"] == 1
    assert out["n_samples"] == 20 and out["n_problems"] == 5
    assert out["pass@1"] == 0.25 and out["pass@4"] == 1.0
    assert out["reranked_pass@1"]["pass@1"] == 1.0  # highest mean log-prob = the canonical one
    rows = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert sum("unrelated" in r["completion"] for r in rows) == 0  # cut at the "\ndef" stop sequence
    assert (tmp_path / "results.jsonl").is_file() and (tmp_path / "summary.json").is_file()
    n_req = len(FakeServer.requests)
    again = sample_and_evaluate(cfg, tmp_path)  # resume: everything is there, nothing is requested
    assert len(FakeServer.requests) == n_req and again["pass@1"] == out["pass@1"]


def test_resume_with_other_settings_is_refused(server, tmp_path):
    from lmlab.errors import ResumeMismatch

    cfg = SampleConfig(model="fake", n=1, backend="openai", base_url=server, limit=1)
    sample_and_evaluate(cfg, tmp_path)
    with pytest.raises(ResumeMismatch, match="temperature"):
        sample_and_evaluate(SampleConfig(model="fake", n=1, backend="openai", base_url=server, limit=1,
                                         temperature=0.2), tmp_path)


@pytest.mark.slow
def test_hf_backend_smollm2_two_problems(tmp_path):
    cfg = SampleConfig(model="smollm2", n=2, temperature=0.8, max_new_tokens=24, batch_size=4, limit=2,
                       prompt_style="base", eval=EvalConfig(k=[1, 2], workers=2))
    out = sample_and_evaluate(cfg, tmp_path)
    rows = [json.loads(x) for x in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and out["n_samples"] == 4
    for r in rows:
        assert not any(s in r["completion"] for s in STOP)
        assert r["mean_logprob"] is None or r["mean_logprob"] <= 0
        assert 0 <= r["n_tokens"] <= 24

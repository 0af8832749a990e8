"""The optional steering judge against a real local OpenAI-compatible server (127.0.0.1, started here)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lmlab.glp.judge import JudgeError, judge_texts, parse_scores


class Judge(BaseHTTPRequestHandler):
    seen: list = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Judge.seen.append((self.path, self.headers.get("Authorization"), body))
        text = body["messages"][-1]["content"]
        reply = "concept: 2\nfluency: 1" if "patient" in text else "Concept = 0, fluency = 2"
        out = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *a):
        pass


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Judge)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()


def test_parse_scores():
    assert parse_scores("concept: 2\nfluency: 0") == (2.0, 0.0)
    c, f = parse_scores("I think it is fluent")
    assert c != c and f != f  # NaN when absent


def test_judge_scores_each_text_and_sends_the_key(server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    Judge.seen.clear()
    out = judge_texts(["the patient was admitted", "a sunny day"], "medical", server, "judge-model")
    assert out == {"judge_concept": [2.0, 0.0], "judge_fluency": [1.0, 2.0]}
    path, auth, body = Judge.seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test" and body["model"] == "judge-model"
    assert "Concept: medical" in body["messages"][-1]["content"] and body["temperature"] == 0


def test_unreachable_judge_is_one_clear_error():
    with pytest.raises(JudgeError, match="judge endpoint .* failed"):
        judge_texts(["x"], "medical", "http://127.0.0.1:9/v1", "m", timeout=2)

"""`lmlab demo --quick` end to end: real corpus, real training, HF export check, real SmolLM2."""

import json

from conftest import run_lmlab


def test_quick_demo_writes_report_and_summary(tmp_path):
    out = tmp_path / "demo"
    r = run_lmlab("demo", "--quick", "--out", str(out), timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads((out / "summary.json").read_text())
    assert s["lm"]["hf_export"]["max_abs_diff"] < 1e-5
    assert s["lm"]["final_eval"]["loss"] < s["lm"]["first_loss"] - 0.5  # the tiny LM learned something
    assert "Paris" in s["smollm2"]["samples"]["The capital of France is"]
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "SmolLM2" in html
    assert "SAE: sparse autoencoder and token labels" in html and 0 < s["sae"]["eval"]["fvu"] < 1.5
    assert s["sae"]["eval"]["lm"]["ce_clean"] < s["sae"]["eval"]["lm"]["ce_zero"] and s["sae"]["labels"]["n_tokens"] > 0
    assert "Token-level filtering" in html and len(s["filter"]["sweep"]) == 4
    assert {r["series"] for r in s["filter"]["sweep"]} == {"baseline", "mask"} and s["filter"]["corpus"]["n_tokens"] > 0
    # a re-run reuses every finished stage (no retraining): the trained runs' files are untouched (not a timing:
    # the quick LM trains in ~4 s, as long as its reuse takes) and it gives the same numbers
    trained = [out / "lm" / "metrics.jsonl", out / "lm" / "model.safetensors", out / "glp" / "metrics.jsonl"]
    before = {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in trained}
    r2 = run_lmlab("demo", "--quick", "--out", str(out), timeout=900)
    assert r2.returncode == 0
    s2 = json.loads((out / "summary.json").read_text())
    assert s2["lm"]["final_eval"] == s["lm"]["final_eval"]
    assert {p: (p.stat().st_mtime_ns, p.read_bytes()) for p in trained} == before

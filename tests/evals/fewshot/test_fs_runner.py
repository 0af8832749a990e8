"""The request engine: shared-prefix loglikelihood equals the naive one-sequence-per-request computation,
scores do not depend on the batch size, rolling windows score every token once, generation is plain greedy."""

from __future__ import annotations

import pytest
import torch
from fs_fixtures import MC_DOCS, tiny_llama

from lmlab.evals.fewshot.runner import ContextTooLong, GenRequest, HFRunner, rolling_windows

REQS = [(f"Question: {d['q']}\nAnswer:", " " + c) for d in MC_DOCS for c in d["choices"]] + [
    ("", "Hello world"), ("Trailing space ", "moves."), ("Short", " x"), ("Answer:", " blue")]


def _naive(model, runner, ctx, cont):
    """One full forward of context + continuation (what lm-eval's HF backend does per request)."""
    c, x = runner.encode_pair(ctx, cont)
    with torch.no_grad():
        lp = model(torch.tensor([c + x])).logits[0].float().log_softmax(-1)[len(c) - 1:-1]  # (len(x), V)
    tgt = torch.tensor(x)
    return float(lp.gather(1, tgt[:, None]).sum()), bool((lp.argmax(-1) == tgt).all())


def test_shared_prefix_equals_naive_and_is_batch_size_invariant():
    model, tok = tiny_llama(seed=1)
    ref = HFRunner(model, tok, batch_size=4).loglikelihood(REQS)
    for (ctx, cont), r in zip(REQS, ref):
        lp, greedy = _naive(model, HFRunner(model, tok), ctx, cont)
        assert r.logprob == pytest.approx(lp, abs=1e-4) and r.is_greedy == greedy
    for bs in (1, 3, 64):
        runner = HFRunner(model, tok, batch_size=bs)
        got = runner.loglikelihood(REQS)
        assert [g.logprob for g in got] == pytest.approx([r.logprob for r in ref], abs=1e-4)
        assert [g.is_greedy for g in got] == [r.is_greedy for r in ref]
    # one forward per distinct context: the 6 questions + 4 other contexts in one batch -> 2 passes
    runner = HFRunner(model, tok, batch_size=64)
    runner.loglikelihood(REQS)
    assert runner.forward_passes == 2


def test_greedy_continuation_is_flagged():
    model, tok = tiny_llama(seed=2)
    runner = HFRunner(model, tok)
    ids = runner.encode("The cat")
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=3, do_sample=False, pad_token_id=tok.pad_token_id)
    cont = out[0, len(ids):].tolist()
    r = runner.loglikelihood_tokens([(ids, cont)])[0]
    assert r.is_greedy and r.n_tokens == 3


def test_rolling_windows_cover_each_token_once():
    toks = list(range(100, 123))
    wins = rolling_windows(toks, 1, 5)
    assert [t for _, p in wins for t in p] == toks
    assert wins[0][0] == [1] and all(len(c) + len(p) - 1 <= 5 for c, p in wins)
    model, tok = tiny_llama(seed=3)
    text = "The quick brown fox jumps over the lazy dog, twice over."
    (whole, n), = HFRunner(model, tok).loglikelihood_rolling([text])
    assert n == len(tok(text, add_special_tokens=False).input_ids)
    lp, _ = _naive(model, HFRunner(model, tok), "", text)  # one window: conditioned on the prefix token
    assert whole == pytest.approx(lp, abs=1e-4)
    (short, n2), = HFRunner(model, tok, max_length=4).loglikelihood_rolling([text])
    assert n2 == n and short != pytest.approx(whole, abs=1e-3)  # less context per token, same tokens


def test_generate_until_matches_greedy_and_cuts_at_stop():
    model, tok = tiny_llama(seed=4)
    runner = HFRunner(model, tok, batch_size=2)
    ctxs = ["Q: What is 1 plus 1?\n\nA:", "Once upon a time", "x"]
    outs = runner.generate_until([GenRequest(c, (), 6) for c in ctxs])
    refs = []
    for c, o in zip(ctxs, outs):
        ids = tok(c, add_special_tokens=False).input_ids
        with torch.no_grad():
            ref = model.generate(torch.tensor([ids]), max_new_tokens=6, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        refs.append(ref[0, len(ids):].tolist())
        assert o == tok.decode(refs[-1], skip_special_tokens=True)
    # stop string = the third greedy token's text: the output is the two tokens before it, and generation
    # stops as soon as it appears (3 forward passes, not 6)
    head, stop = tok.decode(refs[0][:2]), tok.decode(refs[0][2:3])
    assert stop.strip() and stop not in head and outs[0].startswith(head + stop), (outs[0], stop)
    calls = []
    handle = model.register_forward_hook(lambda *a: calls.append(1))
    try:
        cut = runner.generate_until([GenRequest(ctxs[0], (stop,), 6)])[0]
    finally:
        handle.remove()
    assert cut == head and len(calls) == 3
    assert runner.generate_until([GenRequest(ctxs[0], ("no such stop", stop), 6)])[0] == head  # any of several
    # beam search is HF's (same beams, length penalty, early stopping), and differs from greedy here
    for c, greedy in zip(ctxs, refs):
        ids = tok(c, add_special_tokens=False).input_ids
        with torch.no_grad():
            ref = model.generate(torch.tensor([ids]), max_new_tokens=4, do_sample=False, num_beams=4,
                                 length_penalty=0.6, early_stopping=True, pad_token_id=tok.pad_token_id)
        assert ref[0, len(ids):].tolist() != greedy[:4]  # so a dropped num_beams would show
        beams = runner.generate_until([GenRequest(c, (), 4, num_beams=4, length_penalty=0.6)])
        assert beams == [tok.decode(ref[0, len(ids):], skip_special_tokens=True)]


def test_too_long_context_is_a_user_error():
    model, tok = tiny_llama(max_pos=16)
    runner = HFRunner(model, tok)
    with pytest.raises(ContextTooLong, match="request 0"):
        runner.loglikelihood([("word " * 40, " end")])

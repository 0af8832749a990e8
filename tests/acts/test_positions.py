"""One token-position rule (acts/positions.py) for every stage: on a model whose tokenizer adds no BOS, the
harvest, steering directions, probing features and the ΔLM splice all read exactly the positions the store
holds — position 0 (the attention sink) is dropped everywhere, not only in the harvest."""

import json

import numpy as np
import pytest
import torch

from lmlab.acts.positions import encode_docs, keep_positions, pad_batch

TEXTS = ["The heart pumps blood through the arteries.", "Python lists are mutable sequences of objects.",
         "A fracture is a break in a bone.", "Webster defines a lexicon as a vocabulary of words and phrases.",
         "Tea"]
LAYER, SEQ = 1, 24


@pytest.fixture(scope="module")
def bosless(tmp_path_factory):
    """A tiny random Llama with SmolLM2's tokenizer stripped of its BOS token, saved as a local HF dir."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from lmlab.models import load_causal_lm

    _, tok = load_causal_lm("smollm2")
    tok.bos_token = None
    d = tmp_path_factory.mktemp("bosless") / "model"
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=64,
                      bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    model, tok = load_causal_lm(str(d))
    assert tok.bos_token_id is None
    return d, model.eval(), tok


@pytest.fixture(scope="module")
def store(bosless, tmp_path_factory):
    from lmlab.acts.harvester import HarvestConfig, harvest
    from lmlab.acts.store import ActivationStore

    d, _, _ = bosless
    tmp = tmp_path_factory.mktemp("store")
    corpus = tmp / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"text": t, "domain": "general"}) + "\n" for t in TEXTS))
    harvest(HarvestConfig(model=str(d), layer=LAYER, tokens=10_000, out=str(tmp / "s"), corpus=str(corpus),
                          seq_len=SEQ, batch=2, block_docs=5, dtype="fp32", device="cpu"), progress=False)
    return ActivationStore.open(tmp / "s")


def _rows(store, doc: int) -> torch.Tensor:
    return store.get(np.nonzero(store.provenance()["doc"] == doc)[0])


def test_rule_drops_the_sink_without_bos_left_or_right_padded():
    class Tok:
        bos_token_id, all_special_ids = None, [0]

    seqs = [[5, 6, 7], [8, 0, 9, 10, 11]]  # id 0 is special
    for side in ("right", "left"):
        ids, mask = pad_batch(seqs, pad=3, side=side)
        keep = keep_positions(Tok(), ids, mask)
        kept = [ids[r][keep[r]].tolist() for r in range(2)]
        assert kept == [[6, 7], [9, 10, 11]]
        assert keep_positions(Tok(), ids, mask, prepend_bos=False).sum() == 7  # harvest option: keep position 0


def test_harvest_steering_probing_and_delta_lm_select_the_same_positions(bosless, store):
    from lmlab.acts.splice import lm_doc_losses
    from lmlab.glp import probe as P
    from lmlab.glp import steering as S

    _, model, tok = bosless
    prov = store.provenance()
    enc = encode_docs(tok, TEXTS, SEQ)
    assert all(e[0] != tok.eos_token_id for e in enc)  # nothing in front of the first word
    for doc in range(len(TEXTS)):
        pos = prov["pos"][prov["doc"] == doc]
        assert pos.tolist() == list(range(1, len(enc[doc])))  # the sink position 0 is not stored
    # probing features: the same rows, the same values
    c = P.collect(model, tok, LAYER, TEXTS, SEQ)
    for doc in range(len(TEXTS)):
        assert torch.allclose(c.resid[c.doc == doc], _rows(store, doc), atol=1e-5)
    # steering directions: pooled over the same positions
    pooled = S.pooled_acts(model, tok, LAYER, TEXTS, SEQ)
    want = torch.stack([_rows(store, doc).mean(0) for doc in range(len(TEXTS))])
    assert torch.allclose(pooled, want, atol=1e-5)
    # ΔLM: the splice replaces exactly those rows
    seen: list[torch.Tensor] = []
    lm_doc_losses(model, tok, enc, LAYER, lambda h: seen.append(h.clone()) or h, batch=len(TEXTS))
    assert torch.allclose(torch.cat(seen), store.get(np.arange(len(store))), atol=1e-5)

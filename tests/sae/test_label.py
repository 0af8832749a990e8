"""The labelling rule on hand-made activations: seeds need two latents over threshold, spans grow to
convergence over positive neighbours, special tokens are never labelled; thresholds are mean + 4 SD; the
latent choice finds the planted concept latents; labels transfer by character overlap."""

import numpy as np
import pytest
import torch

from lmlab.sae.label import auc, choose_latents, label_tokens, thresholds, transfer_labels


def test_seed_needs_two_latents_and_spans_grow_to_convergence():
    thr = torch.tensor([1.0, 1.0, 1.0])
    acts = torch.tensor([
        [0.0, 0.0, 0.0],  # 0: silent
        [0.2, 0.0, 0.0],  # 1: weakly on: joins the span (neighbour of 2 after one growth step)
        [0.5, 0.0, 0.0],  # 2: weakly on
        [2.0, 3.0, 0.0],  # 3: seed (two latents over threshold)
        [0.0, 0.0, 0.1],  # 4: weakly on
        [0.0, 0.0, 0.0],  # 5: silent: stops the growth
        [0.0, 0.3, 0.0],  # 6: weakly on but not adjacent to a labelled token
        [5.0, 0.0, 0.0],  # 7: one latent over threshold only: not a seed
    ])
    assert label_tokens(acts, thr).tolist() == [False, True, True, True, True, False, False, False]
    special = torch.zeros(8, dtype=torch.bool)
    special[2] = True  # a special token inside the span: never labelled, and the span does not grow across it
    assert label_tokens(acts, thr, special).tolist() == [False, False, False, True, True, False, False, False]
    assert not label_tokens(acts, thr, min_latents=3).any()


def test_thresholds_are_mean_plus_four_sd():
    bg = torch.tensor([[0.0, 1.0], [2.0, 1.0], [4.0, 1.0]])
    assert torch.allclose(thresholds(bg), torch.tensor([2.0 + 4 * 2.0, 1.0]))


def test_choose_latents_finds_the_planted_ones():
    rng = np.random.default_rng(0)
    dom = rng.random(400) < 0.3
    acts = rng.random((400, 50))
    acts[dom, 7] += 0.8  # latent 7 and 31 fire more on the domain's documents
    acts[dom, 31] += 0.5
    out = choose_latents(acts, dom, n_latents=2)
    assert set(out["latents"]) == {7, 31} and min(out["heldout_auc"]) > 0.8
    from lmlab.errors import DataError

    with pytest.raises(DataError, match="in the domain"):
        choose_latents(acts, np.zeros(400, dtype=bool))


def test_auc_known_values():
    assert auc(np.array([[3.0], [4.0]]), np.array([[1.0], [2.0]]))[0] == 1.0
    assert auc(np.array([[1.0]]), np.array([[1.0]]))[0] == 0.5  # ties count half


def test_transfer_by_character_overlap():
    # text "heart attack risk": source tokens "heart"[0,5) " attack"[5,12) " risk"[12,17); "attack" positive
    src = [(0, 5), (5, 12), (12, 17)]
    dst = [(0, 3), (3, 7), (7, 14), (14, 17)]  # "hea" "rt a" "ttack r" "isk"
    assert transfer_labels(src, [False, True, False], dst).tolist() == [False, True, True, False]
    assert not transfer_labels(src, [False, False, False], dst).any()


def test_label_shard_carries_labels_to_another_tokenizer(tmp_path):
    """Labels written as the float16 side channel of a token shard in another tokenizer: each document after an
    end-of-text token, exactly the target tokens that overlap a positive source token marked, only the labelled
    prefix of a cut document written."""
    from lmlab.data.shards import open_shard
    from lmlab.data.tokenizer import Tokenizer, train_tokenizer
    from lmlab.sae.label import label_shard

    texts = ["heart attack risk", "the cat sat on the mat", "heart rate and blood"] * 50
    tok = Tokenizer.load(train_tokenizer(iter(texts), tmp_path / "tok.json", vocab_size=300))
    docs = [{"text": "heart attack risk", "spans": [(0, 5), (5, 12), (12, 17)], "labels": [False, True, False],
             "domain": "medical"},
            {"text": "the cat sat", "spans": [(0, 3), (3, 7), (7, 11)], "labels": [False] * 3, "domain": "general"},
            # labelled only up to character 10 (the labeller's seq_len cut it): " blood" is not written
            {"text": "heart rate and blood", "spans": [(0, 5), (5, 10)], "labels": [True, False], "domain": "medical"}]
    stats = label_shard(docs, tok, tmp_path / "labels.bin", domain="medical")
    sh = open_shard(tmp_path / "labels.bin")
    ids, side = np.asarray(sh.tokens).tolist(), np.asarray(sh.side, dtype=np.float32)
    starts = [i for i, t in enumerate(ids) if t == tok.eot_id]
    assert len(starts) == 3 and starts[0] == 0 and side[starts].sum() == 0
    pieces = [(ids[a + 1:b], side[a + 1:b]) for a, b in zip(starts, starts[1:] + [len(ids)])]
    assert tok.decode(pieces[0][0]) == "heart attack risk"
    assert tok.decode([t for t, y in zip(*pieces[0]) if y == 1]) == " attack"
    assert not pieces[1][1].any()
    assert tok.decode(pieces[2][0]) == "heart rate" and tok.decode([t for t, y in zip(*pieces[2]) if y]) == "heart"
    n_med = len(pieces[0][0]) + len(pieces[2][0])
    assert stats["positive_rate_domain"] == pytest.approx(float(pieces[0][1].sum() + pieces[2][1].sum()) / n_med)
    assert stats["positive_rate_other"] == 0 and stats["n_tokens"] == len(ids)


def test_char_spans_of_a_document_cut_at_seq_len(tmp_path):
    """Every token of a document cut at seq_len after a prepended BOS gets its own character span (the BOS gets
    (0, 0)); an earlier version encoded the text truncated, misaligned by the BOS, and left all spans (0, 0)."""
    from lmlab.acts.positions import encode_docs
    from lmlab.data.tokenizer import Tokenizer, train_tokenizer
    from lmlab.sae.label import _char_spans

    text = "Nephritis, n. (Med.) An inflammation of the kidneys. Entireness, n. The state of being entire."
    hf = Tokenizer.load(train_tokenizer(iter([text] * 20), tmp_path / "tok.json", vocab_size=300)).to_hf()
    for seq_len in (8, 400):
        ids = encode_docs(hf, [text], seq_len, prepend_bos=True)[0]
        assert ids[0] == hf.bos_token_id and len(ids) == min(seq_len, 1 + len(hf(text)["input_ids"]))
        spans = _char_spans(hf, text, ids)
        assert spans[0] == (0, 0) and all(e > s for s, e in spans[1:])
        assert "".join(text[s:e] for s, e in spans[1:]) == hf.decode(ids[1:])


def test_format_latents_are_excluded_by_word_share():
    """A latent firing on the domain's punctuation separates documents best but is not a content latent: its
    word share is 0 and the filter leaves the content latent chosen instead."""
    from lmlab.sae.label import word_share

    text = "(Med.) Fever"  # tokens "(" "Med" "." ")" " Fever"
    spans = [(0, 0), (0, 1), (1, 4), (4, 5), (5, 6), (6, 12)]  # a BOS first
    f = torch.zeros(6, 3)
    f[[3, 4], 0] = 2.0  # latent 0: the tag's "." and ")"
    f[[2, 5], 1] = 1.0  # latent 1: "Med" and " Fever"
    f[5, 2] = 1.0       # latent 2: half on " Fever"
    f[4, 2] = 1.0
    rows = [{"spans": spans, "latents": f}, {"spans": spans, "latents": torch.zeros(6, 3)}]
    share = word_share(rows, [text, text], np.array([True, False]))
    assert share.tolist() == pytest.approx([0.0, 1.0, 0.5])
    rng = np.random.default_rng(0)
    dom = np.arange(40) < 20
    acts = rng.random((40, 3)) * 0.1
    acts[dom, 0] += 1.0   # the format latent separates perfectly
    acts[dom, 1] += 0.08  # the content latent separates less well
    assert choose_latents(acts, dom, 1)["latents"] == [0]
    assert choose_latents(acts, dom, 1, allowed=share >= 0.6)["latents"] == [1]
    with pytest.raises(Exception, match="word-share filter"):
        choose_latents(acts, dom, 1, allowed=np.zeros(3, dtype=bool))


def test_span_agreement_counts_tokens_by_their_entry():
    from lmlab.sae.label import span_agreement

    page = {"text": "fever chills\n\nant hill", "domain": "general", "entry_spans": [[0, 12, "medical"],
                                                                                      [14, 22, "biology"]],
            "spans": [(0, 0), (0, 5), (5, 12), (12, 14), (14, 17), (17, 22)],
            "labels": [False, True, False, False, True, False]}
    entry = {"text": "cough", "domain": "medical", "spans": [(0, 5)], "labels": [True]}  # no spans: one entry
    a = span_agreement([page, entry], "medical")
    assert a["tokens"] == {"between entries": 1, "biology": 2, "medical": 3}
    assert a["positive_rate"]["medical"] == pytest.approx(2 / 3) and a["positive_rate"]["biology"] == 0.5
    assert a["precision"] == pytest.approx(2 / 3) and a["recall"] == pytest.approx(2 / 3)

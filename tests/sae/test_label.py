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

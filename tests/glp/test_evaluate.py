"""Known answers for the sample-quality metrics, and evaluate() on a tiny trained GLP."""

import json

import pytest
import torch
from glp_fixtures import D, store  # noqa: F401  (store is a fixture)

from lmlab.glp.evaluate import classifier_accuracy, evaluate, frechet_distance, gaussian_baseline


def test_frechet_distance_known_answers():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(20000, 8, generator=g)
    b = torch.randn(20000, 8, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b + 3.0) == pytest.approx(8 * 9.0, rel=0.02)  # |mu|^2
    assert frechet_distance(a, 2.0 * b) == pytest.approx(8 * 1.0, rel=0.05)  # d (1 + 4 - 2*2)


def test_classifier_sees_what_fd_cannot():
    g = torch.Generator().manual_seed(1)
    real = (x := torch.randn(6000, 4, generator=g)).sign() * x.abs().sqrt() * 2  # non-Gaussian marginals
    same = (y := torch.randn(6000, 4, generator=g)).sign() * y.abs().sqrt() * 2
    gauss = gaussian_baseline(real, 6000)
    assert frechet_distance(gauss, real) < 0.05 and classifier_accuracy(real, gauss) > 0.6
    assert abs(classifier_accuracy(real, same) - 0.5) < 0.05


def test_evaluate_on_a_tiny_trained_glp(store, tmp_path):  # noqa: F811
    from lmlab.config import apply_overrides, get_preset
    from lmlab.glp.train import train_glp

    cfg = apply_overrides(get_preset("glp", "tiny"), [f"store={json.dumps(str(store))}", f"net.d_in={D}",
                                                      "max_steps=150", "lr=3e-3", "dtype=fp32"])
    summary = train_glp(cfg, tmp_path / "r", progress=False)
    out = evaluate(tmp_path / "r", store, n=150, steps=(1, 20))
    # the saved GLP scores the trainer's own final held-out loss (same rows, noise and sigmas), and it learned
    assert out["n_real"] == 150 and summary["final_eval"]["step"] == 150
    assert out["heldout_loss"] == pytest.approx(summary["final_eval"]["heldout_loss"], rel=1e-5)
    assert out["heldout_loss"] < 1.8
    assert out["floor"]["fd"] < out["glp_1step"]["fd"]  # one Euler step from noise is a poor sampler
    assert out["glp_20step"]["fd"] < out["glp_1step"]["fd"]
    assert set(out) >= {"floor", "gaussian", "glp_1step", "glp_20step"}


def test_classifier_correct_is_the_per_row_accuracy():
    from lmlab.glp.evaluate import classifier_correct, classifier_test_size

    g = torch.Generator().manual_seed(3)
    real, other = torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 0.7
    c = classifier_correct(real, other, seed=1, epochs=5)
    assert c.dtype == torch.bool and c.shape == (classifier_test_size(300),)
    assert float(c.float().mean()) == classifier_accuracy(real, other, seed=1, epochs=5) > 0.6

"""SAELens interop: lmlab -> SAELens folder -> SAELens's own loader, and SAELens -> lmlab, encode and decode
identically on the same raw inputs (<= 1e-5 relative)."""

import pytest
import torch

from lmlab.sae.model import SAEConfig, SparseAutoencoder
from lmlab.sae.saelens import export_saelens, load_sae


def _saelens():
    import os

    try:
        import sae_lens  # noqa: F401
    except ImportError:
        if os.environ.get("CI"):
            raise  # make test installs the saelens extra: a missing package is a failure there
        pytest.skip("sae-lens not installed (pip install -e '.[saelens]')")
    from sae_lens import SAE

    return SAE


def _rel(a, b):
    return float((a - b).norm() / b.norm().clamp_min(1e-12))


def _random_sae(variant: str) -> SparseAutoencoder:
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=24, n_latents=80, k=6, variant=variant), scale=0.37)
    with torch.no_grad():
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.5)
        sae.threshold.fill_(0.3)
    return sae.eval()


@pytest.mark.parametrize("variant", ["topk", "batchtopk"])
def test_lmlab_to_saelens_round_trip(tmp_path, variant):
    SAE = _saelens()
    sae = _random_sae(variant)
    export_saelens(sae, tmp_path / "x", {"model": "synthetic", "layer": 3})
    theirs = SAE.load_from_disk(tmp_path / "x")
    assert theirs.cfg.metadata.hook_name == "blocks.3.hook_resid_post"
    x = torch.randn(256, 24) * 5 + 1
    f_ours, f_theirs = sae.encode(x), theirs.encode(x).detach()
    assert (f_ours > 0).sum() > 0 and _rel(f_ours, f_theirs) <= 1e-5
    assert _rel(sae.decode(f_ours), theirs.decode(f_theirs).detach()) <= 1e-5
    back = load_sae(tmp_path / "x")  # and the folder read back by lmlab
    assert _rel(back.encode(x), f_ours) <= 1e-5 and _rel(back.decode(f_ours), sae.decode(f_ours)) <= 1e-5


def test_saelens_to_lmlab(tmp_path):
    SAE = _saelens()
    from sae_lens.saes.topk_sae import TopKSAE, TopKSAEConfig

    torch.manual_seed(1)
    theirs = TopKSAE(TopKSAEConfig(d_in=24, d_sae=64, k=5, rescale_acts_by_decoder_norm=False))
    with torch.no_grad():
        for p in (theirs.W_enc, theirs.W_dec, theirs.b_enc, theirs.b_dec):
            p.normal_(0, 0.3)
    theirs.save_model(tmp_path / "t")
    ours = load_sae(tmp_path / "t")
    x = torch.randn(200, 24) * 2
    f = theirs.encode(x).detach()
    assert _rel(ours.encode(x), f) <= 1e-5 and _rel(ours.decode(f), theirs.decode(f).detach()) <= 1e-5
    assert isinstance(SAE.load_from_disk(tmp_path / "t"), TopKSAE)


def test_bad_folders_are_one_clear_error(tmp_path):
    from lmlab.errors import DataError

    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "sae_weights.safetensors").write_bytes(b"")
    with pytest.raises(DataError, match="holds no SAE"):
        load_sae(tmp_path / "w")  # weights without cfg.json
    with pytest.raises(DataError, match="no SAE at"):
        load_sae(tmp_path / "missing")
    export_saelens(_random_sae("topk"), tmp_path / "x")
    (tmp_path / "x" / "cfg.json").write_text((tmp_path / "x" / "cfg.json").read_text().replace('"d_sae": 80', '"d_sae": 81'))
    with pytest.raises(DataError, match="do not fit d_in=24, d_sae=81"):
        load_sae(tmp_path / "x")

"""Shared by the GLP tests (imported by them; pytest puts this folder on sys.path): a synthetic store."""

import numpy as np
import pytest
import torch

from lmlab.acts.store import StoreWriter, merge_store

D = 16


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """8,000 rows of a correlated, shifted, non-Gaussian 16-d distribution from 400 documents."""
    path = tmp_path_factory.mktemp("store") / "s"
    g = torch.Generator().manual_seed(0)
    mix = torch.randn(D, D, generator=g)
    z = torch.randn(8000, D, generator=g)
    x = torch.tanh(z @ mix) * 3 + torch.arange(D) * 0.5
    w = StoreWriter(path, {"model": "synthetic", "layer": 0, "d_model": D, "dtype": "float32", "domains": ["a"],
                           "config": {}}, shard_size=2000)
    w.add(x, np.repeat(np.arange(400), 20), np.tile(np.arange(20), 400).astype(np.int32), 0, 0)
    w.close({"done": True})
    merge_store(path)
    return path



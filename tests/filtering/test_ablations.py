"""Filter-sweep ablations and bad input: label noise moves flags without changing their share, a sweep refuses
unlabelled shards and missing domains, and the paired held-out gaps are exact where the answer is known."""

import json
import shutil

import numpy as np
import pytest

from lmlab.data.shards import open_shard, write_side
from lmlab.errors import ConfigError, DataError


@pytest.fixture()
def labelled(tiny_data, tmp_path):
    """tiny_data with a synthetic side channel: ~10% of tokens flagged in runs of 8 (score 0.9), the rest 0.1."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    n = len(open_shard(data / "train.bin"))
    rng = np.random.default_rng(0)
    starts = rng.choice(n - 8, n // 80, replace=False)
    side = np.full(n, 0.1, np.float32)
    for s in starts:
        side[s:s + 8] = 0.9
    write_side(data / "train.bin", side)
    (data / "train.label.json").write_text(json.dumps({"token_threshold": 0.5, "doc_threshold": 0.5}))
    return data, side


def test_noisy_labels_move_a_share_of_flags_and_keep_the_count(labelled, tmp_path):
    from lmlab.filtering.sweep import noisy_labels

    data, side = labelled
    out = noisy_labels(data, 0.25, 0.5, tmp_path / "noisy")
    new = np.asarray(open_shard(out / "train.bin").side, dtype=np.float32)
    clean, noisy = side >= 0.5, new >= 0.5
    k = int(round(0.25 * clean.sum()))
    assert noisy.sum() == clean.sum() and (clean & noisy).sum() == clean.sum() - k  # precision = recall = 0.75
    assert np.array_equal(open_shard(out / "train.bin").tokens, open_shard(data / "train.bin").tokens)
    assert (out / "train.label.json").is_file() and (out / "meta.json").is_file()
    before = (out / "train.side").stat().st_mtime_ns
    noisy_labels(data, 0.25, 0.5, tmp_path / "noisy")  # same inputs: reused, not rewritten
    assert (out / "train.side").stat().st_mtime_ns == before
    with pytest.raises(ConfigError, match="label_noise"):
        from lmlab.filtering.sweep import FilterSweepConfig

        FilterSweepConfig(data=str(data), label_noise=1.0)


def test_sweep_bad_input_is_one_clear_error(tiny_data, labelled, tmp_path):
    from lmlab.filtering.sweep import FilterSweepConfig, sweep

    with pytest.raises(DataError, match="no token labels"):  # shards without a side channel, a mask requested
        sweep(FilterSweepConfig(data=str(tiny_data), series=["mask"], sizes=["16x1"]), tmp_path / "a")
    data, _ = labelled
    with pytest.raises(DataError, match="no held-out set for biology"):  # the embedded corpus has no biology
        sweep(FilterSweepConfig(data=str(data), series=["mask"], sizes=["16x1"]), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # nothing written


def test_label_noise_sweep_and_paired_gaps(labelled, tmp_path):
    """A mask run on noisy flags trains on the derived copy with the same masked share; a run compared with
    itself has gap 0 exactly, and against another run its gap lies inside its own bootstrap interval."""
    from lmlab.filtering.evaluate import paired_gaps
    from lmlab.filtering.sweep import FilterSweepConfig, sweep

    data, _ = labelled
    doms = json.loads((data / "meta.json").read_text())["val_sets"]
    kw = dict(data=str(data), series=["mask"], sizes=["16x1"], tokens_per_param=2.0, seq_len=32, batch_size=8,
              evals_per_run=2, eval_windows=4, device="cpu", domains=doms)
    clean = sweep(FilterSweepConfig(**kw), tmp_path / "clean", progress=False)["runs"][0]
    noisy = sweep(FilterSweepConfig(**kw, label_noise=0.5), tmp_path / "noisy", progress=False)["runs"][0]
    cfg = json.loads((tmp_path / "noisy" / noisy["name"] / "config.json").read_text())
    assert cfg["train"]["data"].endswith("data_noisy")
    assert noisy["masked_share"] == pytest.approx(clean["masked_share"], abs=0.02)
    a, b = tmp_path / "clean" / clean["name"], tmp_path / "noisy" / noisy["name"]
    g = paired_gaps({"self": a, "noisy": b}, a, data, domains=doms, seq_len=32, max_windows=40, n_boot=200)
    for d in doms:
        assert g["runs"]["self"][d]["gap"] == 0.0 and g["runs"]["self"][d]["ci95"] == [0.0, 0.0]
        lo, hi = g["runs"]["noisy"][d]["ci95"]
        assert lo <= g["runs"]["noisy"][d]["gap"] <= hi and g["runs"]["noisy"][d]["gap"] != 0.0
    with pytest.raises(DataError, match="no held-out set for domain 'biology'"):
        paired_gaps({}, a, data, domains=("biology",))


@pytest.mark.slow
@pytest.mark.dist
def test_filter_sweep_under_torchrun_matches_one_process(labelled, tmp_path):
    """`torchrun --nproc_per_node 2 -m lmlab filter sweep` with label noise: rank 0 builds the noisy copy while
    the other waits, each run is data-parallel, and the final losses equal the 1-process sweep's."""
    from conftest import run_torchrun

    data, _ = labelled
    doms = json.loads((data / "meta.json").read_text())["val_sets"]
    sets = ['series=["baseline","mask"]', 'sizes=["16x1"]', "tokens_per_param=2", "seq_len=32", "batch_size=8",
            "evals_per_run=2", "eval_windows=4", 'device="cpu"', "label_noise=0.25", f"domains={json.dumps(doms)}"]
    rows = {}
    for world in (1, 2):
        out = tmp_path / f"w{world}"
        run_torchrun("filter", "sweep", "--data", str(data), "--out", str(out), "--no-progress",
                     *[x for s in sets for x in ("--set", s)], nproc=world)
        rows[world] = {r["series"]: r for r in json.loads((out / "sweep.json").read_text())["runs"]}
    for series in ("baseline", "mask"):
        a, b = rows[1][series], rows[2][series]
        assert a["steps"] == b["steps"] and abs(a["loss"] - b["loss"]) < 5e-3
    assert (tmp_path / "w2" / "data_noisy" / "filter.json").is_file()

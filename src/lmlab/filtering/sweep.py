"""`lmlab filter sweep`: filtered pretraining at several sizes (Rathi & Radford 2026 §3.2, §4.2; reference §2.6–2.7).

Series, all on one labelled dataset (DATA/train.side and DATA/train.docflags.npy from `lmlab filter label`):
  baseline   the data as is
  document   documents whose document-classifier probability >= doc_threshold dropped (OUT/data_document/)
  mask       loss masked where the token score >= threshold (`mask`: input-keyed as the paper's code, or
             target / union), forget tokens still in the input
  removal    the same tokens also replaced by <|hidden|> (input and target), loss masked
`label_noise` > 0 (ablation) trains mask/removal on OUT/data_noisy/, a copy whose flags are partly moved.
Sizes follow `lmlab scaling sweep`'s rules (scaling/sweep.py: LR ~ 1/sqrt(width), warm-up, cosine to the run's
own horizon), D = tokens_per_param x N. Token budget (`budget`): "loss_tokens" equalises loss-bearing tokens as
the paper does — a masked run takes ceil(D / (B T (1 - r))) steps, r its masked share — while "processed"
gives every series the baseline's steps. Both compute figures are recorded per run (nominal 6·N·D and
processed 6·N·tokens read). Every run appends its held-out losses (forget = medical, retain = biology, general)
to OUT/<series>.csv; a finished run is skipped and an interrupted one resumes from its checkpoint, so the sweep
survives kill -9 and a move to a new machine with OUT; under torchrun each run is data-parallel.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from lmlab.config import check_literal
from lmlab.errors import ConfigError

SERIES = ("baseline", "document", "mask", "removal")


@dataclass
class FilterSweepConfig:
    data: str = ""
    """Labelled prepared dataset (`lmlab data prepare` + `lmlab filter label`)."""
    series: list[str] = field(default_factory=lambda: list(SERIES))
    """Which series to train (baseline, document, mask, removal)."""
    sizes: list[str] = field(default_factory=lambda: ["32x2", "48x2", "64x2", "96x3"])
    """Model shapes WIDTHxLAYERS (as `lmlab scaling sweep`)."""
    tokens_per_param: float = 20.0
    """D = this x N (Chinchilla's 20)."""
    param_count: Literal["total", "nonembed"] = "nonembed"
    """Which N sets D: non-embedding parameters (Kaplan) keep tiny models' budgets from being all embedding."""
    budget: Literal["loss_tokens", "processed"] = "loss_tokens"
    """Equalise loss-bearing tokens (the paper) or processed tokens across series (module docstring)."""
    mask: Literal["input", "target", "union"] = "input"
    """Which positions a flagged token masks (lm/train.py; the paper's code: input)."""
    threshold: float | None = None
    """Token score threshold in [0, 1] (None: the labelling classifier's F1-optimal one)."""
    doc_threshold: float | None = None
    """Document probability threshold in [0, 1] (None: the document classifier's)."""
    label_noise: float = 0.0
    """Ablation: move this share of the flagged tokens to random unflagged positions before masking (precision
    and recall of the flags both fall to 1 - rate; the flagged share, hence the compute, stays the same)."""
    domains: list[str] = field(default_factory=lambda: ["medical", "biology", "general"])
    """Held-out domains every run must be scored on (forget, retain, others): checked before anything trains."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Every run is repeated per seed (init and data order)."""
    seq_len: int = 128
    """Tokens per sequence."""
    batch_size: int = 32
    """Sequences per step."""
    lr_ref: float = 4e-3
    """Peak LR at width d_ref (scaling sweep's rule)."""
    d_ref: int = 32
    """Reference width of the LR rule."""
    evals_per_run: int = 6
    """Held-out evaluations per run (runs.csv rows); the last is the final loss."""
    eval_windows: int = 32
    """Sequences per domain in each evaluation."""
    dtype: Literal["fp32", "bf16"] = "fp32"
    """Training precision."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """auto = cuda when available."""

    def __post_init__(self):
        check_literal(self)
        if bad := [s for s in self.series if s not in SERIES]:
            raise ConfigError(f"unknown series {', '.join(bad)}", f"choose from {', '.join(SERIES)}")
        for name in ("threshold", "doc_threshold"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise ConfigError(f"{name}={v} is outside [0, 1]", f"give {name} as a probability")
        if not 0.0 <= self.label_noise < 1.0:
            raise ConfigError(f"label_noise={self.label_noise} is outside [0, 1)", "give the share of flags to move")


def label_info(data: Path) -> dict:
    """DATA/train.label.json (written by `lmlab filter label`), or a one-line error."""
    from lmlab.errors import DataError
    from lmlab.io import read_json

    if not (data / "train.label.json").is_file() or not (data / "train.side").is_file():
        raise DataError(f"{data} has no token labels (train.side / train.label.json)",
                        "run `lmlab filter label --classifier CLS --data DATA` first")
    return read_json(data / "train.label.json")


def _derived(data: Path, out: Path, key: dict, names) -> bool:
    """Prepare OUT as a dataset derived from DATA: True when OUT already holds one made from `key`; else copy
    DATA's files whose name passes `names` (val sets, tokenizer, meta ...) and return False."""
    import shutil

    from lmlab.io import read_json

    if (out / "filter.json").is_file() and read_json(out / "filter.json")["key"] == key:
        return True
    out.mkdir(parents=True, exist_ok=True)
    (out / "filter.json").unlink(missing_ok=True)  # written last: marks the directory complete
    for f in data.iterdir():
        if f.is_file() and names(f.name) and f.name != "filter.json":
            shutil.copy2(f, out / f.name)
    return False


def _is_val_or_tokenizer(name: str) -> bool:
    return name.startswith(("val.", "tokenizer")) or name == "special_tokens_map.json"


def document_filtered(data: Path, doc_threshold: float, out: Path) -> Path:
    """OUT: DATA with every train document whose document probability >= doc_threshold dropped (val sets,
    tokenizer and meta copied; no side channel). Reused when it was made from the same inputs."""
    from lmlab.data.shards import open_shard, write_shard
    from lmlab.data.tokenizer import Tokenizer
    from lmlab.filtering.classifier import shard_documents
    from lmlab.io import read_json, write_json

    key = {"data": str(data.resolve()), "doc_threshold": doc_threshold,
           "train_bytes": (data / "train.bin").stat().st_size}
    if _derived(data, out, key, _is_val_or_tokenizer):
        return out
    tok = Tokenizer.load(data)
    sh = open_shard(data / "train.bin")
    tokens = np.asarray(sh.tokens)
    docs = shard_documents(tokens, tok.eot_id)
    p = np.load(data / "train.docflags.npy")
    keep = [tokens[s:e] for (s, e), q in zip(docs, p) if q < doc_threshold]
    write_shard(out / "train.bin", np.concatenate(keep) if keep else np.zeros(0, np.int64), sh.vocab_size)
    meta = read_json(data / "meta.json")
    write_json(out / "meta.json", {**meta, "document_filter": {"dropped_docs": int((p >= doc_threshold).sum()),
                                                               "kept_tokens": int(sum(map(len, keep)))}})
    write_json(out / "filter.json", {"key": key, "dropped_doc_rate": float((p >= doc_threshold).mean()),
                                     "kept_token_rate": float(sum(map(len, keep)) / max(1, len(tokens)))})
    return out


def noisy_labels(data: Path, rate: float, threshold: float, out: Path, seed: int = 0) -> Path:
    """OUT: DATA with label noise in its side channel (ablation, `label_noise`): `rate` of the tokens scored
    >= threshold get score 0 and as many random unflagged tokens get score 1, so the flagged share is unchanged
    while the flags' precision and recall against the clean ones fall to 1 - rate."""
    import os

    from lmlab.data.shards import open_shard, write_side
    from lmlab.io import write_json

    key = {"data": str(data.resolve()), "rate": rate, "threshold": threshold, "seed": seed,
           "side_bytes": (data / "train.side").stat().st_size}
    if _derived(data, out, key, lambda n: n not in ("train.bin", "train.side")):
        return out
    (out / "train.bin").unlink(missing_ok=True)
    try:  # the tokens are unchanged: share them when the filesystem allows
        os.link(data / "train.bin", out / "train.bin")
    except OSError:
        import shutil

        shutil.copy2(data / "train.bin", out / "train.bin")
    side = np.array(open_shard(data / "train.bin").side, dtype=np.float32)
    flagged = np.flatnonzero(side >= threshold)
    k = int(round(rate * len(flagged)))
    rng = np.random.default_rng(seed)
    off = rng.choice(flagged, k, replace=False)
    pool = np.flatnonzero(side < threshold)
    on = pool[rng.choice(len(pool), k, replace=False)]
    side[off], side[on] = 0.0, 1.0
    write_side(out / "train.bin", side)  # atomic
    write_json(out / "filter.json", {"key": key, "moved_flags": k, "flagged": int(len(flagged))})
    return out


def masked_share(data: Path, mask: str, threshold: float, seq_len: int) -> float:
    """Share of training targets that lose their loss under `mask` (estimated on 2,000 random windows)."""
    from lmlab.data.shards import open_shard, windows
    from lmlab.lm.train import TrainConfig, filter_batch

    sh = open_shard(data / "train.bin")
    starts = np.random.default_rng(0).integers(0, len(sh) - seq_len - 1, 2000)
    x, y, sx, sy = windows(sh, starts, seq_len)
    from lmlab.lm.model import ModelConfig

    cfg = TrainConfig(model=ModelConfig(max_seq_len=seq_len), mask=mask, mask_threshold=threshold, seq_len=seq_len)
    w = filter_batch(cfg, x, y, sx, sy, None)[2]
    return float(1 - w.float().mean())


def check_data(cfg: FilterSweepConfig, data: Path) -> dict:
    """The dataset's label info, after checking it has labels and every held-out domain (one-line errors)."""
    from lmlab.errors import DataError
    from lmlab.io import read_json

    info = label_info(data)
    have = read_json(data / "meta.json").get("val_sets", [])
    if missing := [d for d in cfg.domains if d not in have]:
        raise DataError(f"{data} has no held-out set for {', '.join(missing)} (it has {', '.join(have)})",
                        "prepare it from a corpus with those domains, or --set domains='[...]'")
    return info


def plan(cfg: FilterSweepConfig, out: Path) -> list[dict]:
    """Every run: {series, size, seed, config (lm TrainConfig), nominal tokens D, masked share}; cheapest first."""
    from lmlab.io import read_json
    from lmlab.lm.train import resolve_data
    from lmlab.scaling.sweep import SweepConfig, run_config

    data = resolve_data(cfg.data)
    info = check_data(cfg, data)
    thr = cfg.threshold if cfg.threshold is not None else info["token_threshold"]
    dthr = cfg.doc_threshold if cfg.doc_threshold is not None else info["doc_threshold"]
    vocab = read_json(data / "meta.json")["vocab_size"]
    noisy = out / "data_noisy"  # built by sweep() before planning; a dry run before that measures the clean flags
    src = noisy if cfg.label_noise and (noisy / "filter.json").is_file() else data
    r = masked_share(src, cfg.mask, thr, cfg.seq_len) if {"mask", "removal"} & set(cfg.series) else 0.0
    sc = SweepConfig(sizes=cfg.sizes, tokens_per_param=[cfg.tokens_per_param], param_count=cfg.param_count,
                     data=str(data), seq_len=cfg.seq_len, batch_size=cfg.batch_size, lr_ref=cfg.lr_ref,
                     d_ref=cfg.d_ref, evals_per_run=cfg.evals_per_run, eval_windows=cfg.eval_windows,
                     dtype=cfg.dtype, device=cfg.device)
    runs = []
    for series in cfg.series:
        for size in cfg.sizes:
            for seed in cfg.seeds:
                tc = run_config(sc, size, cfg.tokens_per_param, out / f"{series}.csv", vocab)
                d_nominal = tc.max_steps * tc.batch_size * tc.seq_len
                share = r if series in ("mask", "removal") else 0.0
                if share and cfg.budget == "loss_tokens":
                    tc.max_steps = math.ceil(tc.max_steps / (1 - share))
                    tc.eval_every = tc.log_every = tc.ckpt_every = max(1, tc.max_steps // cfg.evals_per_run)
                tc.seed, tc.name = seed, f"{series}/{size}_s{seed}"
                if series == "document":
                    tc.data = str(out / "data_document")
                if series in ("mask", "removal"):
                    if cfg.label_noise:
                        tc.data = str(out / "data_noisy")
                    tc.mask, tc.mask_threshold, tc.removal = cfg.mask, thr, series == "removal"
                runs.append({"series": series, "size": size, "seed": seed, "config": tc, "d_nominal": d_nominal,
                             "masked_share": share, "doc_threshold": dthr, "threshold": thr})
    return sorted(runs, key=lambda r: (r["config"].max_steps * r["config"].model.d_model ** 2
                                       * r["config"].model.n_layer, SERIES.index(r["series"])))


def sweep(cfg: FilterSweepConfig, out: str | Path, progress: bool = True) -> dict:
    """Train every planned run into OUT/<series>/<size>_s<seed>/ (finished runs skipped, interrupted ones
    resumed); OUT/sweep.json lists every run with its compute both ways and its final held-out losses."""
    from lmlab import dist
    from lmlab.io import read_json, write_json
    from lmlab.lm.train import resolve_data, train
    from lmlab.runs import checkpoint

    out = Path(out)
    saved = out / "sweep_config.json"
    if saved.is_file() and read_json(saved) != asdict(cfg):
        raise ConfigError(f"{out} holds a sweep with a different config", "use the same flags, or a new --out")
    data = resolve_data(cfg.data)
    check_data(cfg, data)  # before anything is written
    if dist.is_main():
        out.mkdir(parents=True, exist_ok=True)
        write_json(saved, asdict(cfg))
        if cfg.label_noise and {"mask", "removal"} & set(cfg.series):
            thr = cfg.threshold if cfg.threshold is not None else label_info(data)["token_threshold"]
            noisy_labels(data, cfg.label_noise, thr, out / "data_noisy", seed=cfg.seeds[0])
    dist.barrier()
    runs = plan(cfg, out)
    if dist.is_main() and "document" in cfg.series:
        document_filtered(data, runs[0]["doc_threshold"], out / "data_document")
    dist.barrier()
    rows = []
    for r in runs:
        tc, run = r["config"], out / r["config"].name
        if not (run / "summary.json").is_file():
            if dist.is_main():
                print(f"filter sweep: {tc.name} ({tc.max_steps} steps)", flush=True)
            train(tc, run, resume=checkpoint.latest(run) is not None, progress=progress)
        rows.append(_row(r, read_json(run / "summary.json"), "n_total" if cfg.param_count == "total" else "n_nonembed"))
    result = {"config": asdict(cfg), "runs": rows}
    if dist.is_main():
        write_json(out / "sweep.json", result)
    return result


def _row(r: dict, summary: dict, n_key: str) -> dict:
    """One run's figures: N (the count D was set from), nominal D and C = 6 N D, processed tokens and C, final
    held-out losses."""
    tc = r["config"]
    n = summary.get("params", {}).get(n_key)
    processed = tc.max_steps * tc.batch_size * tc.seq_len
    final = summary.get("final_eval", {})
    return {"series": r["series"], "size": r["size"], "seed": r["seed"], "name": tc.name, "steps": tc.max_steps,
            "n_params": n, "d_nominal": r["d_nominal"], "c_nominal": 6 * n * r["d_nominal"] if n else None,
            "tokens_processed": processed, "c_processed": 6 * n * processed if n else None,
            "loss_bearing_tokens": summary.get("trained_tokens"), "masked_share": r["masked_share"],
            "threshold": {"mask": r["threshold"], "removal": r["threshold"],
                          "document": r["doc_threshold"]}.get(r["series"]),
            **{k: v for k, v in final.items() if k.startswith("loss")}}


__all__ = ["FilterSweepConfig", "SERIES", "document_filtered", "label_info", "masked_share", "noisy_labels", "plan",
           "sweep"]

"""`lmlab acts ...`: harvest the residual stream, verify and describe a store."""

from __future__ import annotations

from pathlib import Path

import typer

from lmlab.cli_options import check_number, option, parse_list

app = typer.Typer(no_args_is_help=True)
_H = "lmlab.acts.harvester:HarvestConfig"  # every option's default and help (read without importing torch)


@app.command("harvest")
def harvest_cmd(
    model: str = option(_H, "model"),
    layer: int = option(_H, "layer", required=True),
    tokens: int = option(_H, "tokens"),
    out: Path = option(_H, "out", note="Rerun the same command to resume.", required=True),
    corpus: str = option(_H, "corpus", shown="embedded"),
    split: str = option(_H, "split", note="Local corpora are hash-split, ~2% val."),
    domains: str = option(_H, "domains", note="Comma-separated."),
    seq_len: int = option(_H, "seq_len"),
    batch: int = option(_H, "batch"),
    batching: str = option(_H, "batching"),
    dtype: str = option(_H, "dtype"),
    store_dtype: str = option(_H, "store_dtype"),
    shard_size: int = option(_H, "shard_size"),
    device: str = option(_H, "device"),
    set_: list[str] = typer.Option([], "--set", help="Override any HarvestConfig field: --set block_docs=64."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Store layer-L residuals of every non-special token (torchrun-aware: one store, per-rank shards)."""
    import json

    from lmlab.acts.harvester import HarvestConfig, harvest_main
    from lmlab.config import apply_overrides, given, print_dry_run

    check_number(layer, "--layer", minimum=0), check_number(tokens, "--tokens", minimum=1)
    check_number(seq_len, "--seq-len", minimum=1), check_number(batch, "--batch", minimum=1)
    check_number(shard_size, "--shard-size", minimum=1)
    cfg = HarvestConfig(**given(model=model, layer=layer, tokens=tokens, out=str(out), split=split, seq_len=seq_len,
                                corpus=None if corpus == "embedded" else corpus,  # None: the default, embedded
                                domains=parse_list(domains, "--domains"), batch=batch, batching=batching, dtype=dtype,
                                store_dtype=store_dtype, shard_size=shard_size, device=device))
    cfg = apply_overrides(cfg, list(set_))
    if dry_run:
        print_dry_run(cfg, "lmlab acts harvest")
        return
    summary = harvest_main(cfg, progress=progress)
    if summary:
        print(json.dumps(summary))


@app.command("verify")
def verify_cmd(store: Path) -> None:
    """Exit 0 only if every shard's count and sha256 match the manifest."""
    from lmlab.acts.store import verify_store

    problems = verify_store(store)
    for p in problems:
        print(f"error: {p}")
    if problems:
        raise typer.Exit(1)
    print(f"ok: {store}")


@app.command("info")
def info_cmd(store: Path) -> None:
    """One JSON object: model, layer, d_model, count, shards, mean norm."""
    import json

    from lmlab.acts.store import ActivationStore

    s = ActivationStore.open(store)
    print(json.dumps({"model": s.model, "layer": s.layer, "d_model": s.d_model, "dtype": s.dtype, "count": len(s),
                      "mean_norm": s.stats["mean_norm"], "domains": s.domains}))

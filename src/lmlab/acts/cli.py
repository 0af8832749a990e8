"""`lmlab acts ...`: harvest the residual stream, verify and describe a store."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("harvest")
def harvest_cmd(
    model: str = typer.Option("smollm2", help="smollm2 | local HF dir | lmlab run dir | hub id."),
    layer: int = typer.Option(..., help="Decoder block whose output is stored (0-indexed = HF hidden_states[L+1])."),
    tokens: int = typer.Option(100_000, help="Activations to store."),
    out: Path = typer.Option(..., help="Store directory (rerun the same command to resume)."),
    corpus: str = typer.Option("embedded", help="'embedded' or a local .txt/.jsonl/.parquet file or directory."),
    split: str = typer.Option("train", help="Corpus split: train | val (local corpora are hash-split, ~2% val)."),
    domains: str = typer.Option(None, help="Comma-separated domains to keep."),
    seq_len: int = typer.Option(512, help="Truncate documents to this many tokens."),
    batch: int = typer.Option(16, help="Documents per forward pass."),
    dtype: str = typer.Option("bf16", help="bf16 | fp32: compute and store dtype."),
    shard_size: int = typer.Option(65536, help="Activations per shard."),
    device: str = typer.Option("auto", help="auto | cpu | cuda."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Store layer-L residuals of every non-special token (torchrun-aware: one store, per-rank shards)."""
    import json

    from lmlab.acts.harvester import HarvestConfig, harvest_main
    from lmlab.config import print_dry_run

    cfg = HarvestConfig(model=model, layer=layer, tokens=tokens, out=str(out),
                        corpus=None if corpus == "embedded" else corpus, split=split,
                        domains=domains.split(",") if domains else None, seq_len=seq_len, batch=batch,
                        dtype=dtype, shard_size=shard_size, device=device)  # type: ignore[arg-type]
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

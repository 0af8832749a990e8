"""`lmlab data ...`: build the embedded corpus, prepare tokenizer + token shards."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("corpus")
def corpus_cmd(force: bool = typer.Option(False, help="Rebuild even if cached.")) -> None:
    """Fetch (Debian packages) and build the embedded domain-labelled corpus in the user cache."""
    import json

    from lmlab.data.corpus import ensure_embedded_corpus

    path = ensure_embedded_corpus(force=force)
    print(json.dumps({"path": str(path), **json.loads((path / "manifest.json").read_text())}, indent=2))


@app.command("prepare")
def prepare_cmd(
    out: Path = typer.Option(..., help="Dataset directory to write."),
    corpus: str = typer.Option("embedded", help="'embedded' or a local .txt/.jsonl/.parquet file or directory."),
    tokenizer: str = typer.Option(None, help="Existing tokenizer (tokenizer.json, dir, HF name); default: train BPE."),
    vocab_size: int = typer.Option(8192, help="Vocabulary of a newly trained BPE."),
    max_train_tokens: int = typer.Option(None, help="Cap on train tokens."),
    max_val_tokens: int = typer.Option(200_000, help="Cap on held-out tokens per domain."),
    domains: str = typer.Option(None, help="Comma-separated domains to keep."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
) -> None:
    """Train a BPE (or take one) and write train.bin + val.<domain>.bin + meta.json."""
    from lmlab.config import print_dry_run
    from lmlab.data.prepare import DataConfig, prepare_dataset

    cfg = DataConfig(corpus=None if corpus == "embedded" else corpus, tokenizer=tokenizer, vocab_size=vocab_size,
                     max_train_tokens=max_train_tokens, max_val_tokens=max_val_tokens,
                     domains=domains.split(",") if domains else None)
    if dry_run:
        print_dry_run(cfg, "lmlab data prepare")
        return
    path = prepare_dataset(cfg, out)
    print((path / "meta.json").read_text())

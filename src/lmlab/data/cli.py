"""`lmlab data ...`: build the embedded corpus, prepare tokenizer + token shards."""

from __future__ import annotations

from pathlib import Path

import typer

from lmlab.cli_options import check_number, option, parse_list

app = typer.Typer(no_args_is_help=True)
_D = "lmlab.data.prepare:DataConfig"  # prepare's option defaults and help


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
    corpus: str = option(_D, "corpus", shown="embedded"),
    tokenizer: str = option(_D, "tokenizer"),
    vocab_size: int = option(_D, "vocab_size"),
    max_train_tokens: int = option(_D, "max_train_tokens"),
    max_val_tokens: int = option(_D, "max_val_tokens"),
    domains: str = option(_D, "domains", note="Comma-separated."),
    set_: list[str] = typer.Option([], "--set",
                                   help="Override any DataConfig field: --set tokenizer_train_chars=2000000."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
) -> None:
    """Train a BPE (or take one) and write train.bin + val.<domain>.bin + meta.json."""
    from lmlab.config import apply_overrides, given, print_dry_run
    from lmlab.data.prepare import DataConfig, prepare_dataset

    check_number(vocab_size, "--vocab-size", minimum=259)  # 256 bytes + 3 special tokens (data/tokenizer.py)
    check_number(max_train_tokens, "--max-train-tokens", minimum=1)
    check_number(max_val_tokens, "--max-val-tokens", minimum=1)
    cfg = DataConfig(**given(corpus=None if corpus == "embedded" else corpus,  # None: the default, embedded
                             tokenizer=tokenizer, vocab_size=vocab_size, max_train_tokens=max_train_tokens,
                             max_val_tokens=max_val_tokens, domains=parse_list(domains, "--domains")))
    cfg = apply_overrides(cfg, list(set_))
    if dry_run:
        print_dry_run(cfg, "lmlab data prepare")
        return
    path = prepare_dataset(cfg, out)
    print((path / "meta.json").read_text())

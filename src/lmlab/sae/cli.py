"""`lmlab sae ...`: sparse autoencoders on activation stores (train; presets)."""

from __future__ import annotations

from pathlib import Path

import typer

from lmlab.cli_options import option, parse_log

app = typer.Typer(no_args_is_help=True)
_T = "lmlab.sae.train:SAETrainConfig"


@app.command("train")
def train_cmd(
    store: Path = typer.Option(..., help="Activation store (lmlab acts harvest)."),
    out: Path = typer.Option(..., help="Run directory."),
    preset: str = typer.Option("tiny", help="Preset name; `lmlab sae presets` lists them."),
    latents: int = option(_T, "n_latents", "--latents", shown="expansion x the store's width"),
    k: int = option(_T, "k", shown="the preset's"),
    set_: list[str] = typer.Option([], "--set", help="Override any field: --set expansion=16 --set variant=batchtopk."),
    log: list[str] = option(_T, "log", "--log", note="Repeatable or comma-separated.", shown="none"),
    resume: bool = typer.Option(False, help="Continue exactly from OUT/ckpt."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the resolved config and exit."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """Train a TopK / BatchTopK SAE on a store (torchrun-aware: `torchrun --nproc_per_node 2 -m lmlab sae train ...`)."""
    import json

    from lmlab.config import apply_overrides, get_preset, print_dry_run, set_fields
    from lmlab.sae import train as T

    cfg = apply_overrides(get_preset("sae", preset), [f"store={json.dumps(str(store))}", *set_])
    cfg = set_fields(cfg, {"n_latents": latents, "k": k, "log": parse_log(log)})
    if dry_run:
        print_dry_run(cfg, f"lmlab sae train --preset {preset}")
        return
    summary = T.train_sae(cfg, out, resume=resume, progress=progress)
    if summary:
        print(json.dumps(summary))


@app.command("presets")
def presets_cmd() -> None:
    """List the SAE training presets, one name per line."""
    from lmlab.config import presets
    from lmlab.sae import train  # noqa: F401  (registers the presets)

    print("\n".join(presets("sae")))


@app.command("export")
def export_cmd(
    sae: Path = typer.Option(..., "--sae", help="An lmlab SAE run directory (lmlab sae train)."),
    out: Path = typer.Option(..., help="Folder to write in SAELens's format (cfg.json + sae_weights.safetensors)."),
) -> None:
    """Write an lmlab SAE in SAELens's on-disk format (`SAE.load_from_disk(OUT)` reads it)."""
    import json

    from lmlab.errors import DataError
    from lmlab.sae.saelens import export_saelens, load_sae

    if not (sae / "sae.json").is_file():
        raise DataError(f"{sae} is not a finished lmlab SAE run (no sae.json)", "pass the --out of `lmlab sae train`")
    hook = json.loads((sae / "sae.json").read_text()).get("hook", {})
    print(json.dumps({"out": str(export_saelens(load_sae(sae), out, hook))}))


@app.command("eval")
def eval_cmd(
    sae: Path = typer.Option(..., "--sae", help="An lmlab SAE run directory or a SAELens folder."),
    store: Path = typer.Option(None, help="Activation store (default: the one the lmlab SAE was trained on)."),
    n_rows: int = option("lmlab.sae.evaluate:evaluate_sae", "n_rows", help="Held-out activation rows scored."),
    n_docs: int = option("lmlab.sae.evaluate:evaluate_sae", "n_docs", help="Held-out documents for ΔCE / KL."),
    seq_len: int = option("lmlab.sae.evaluate:evaluate_sae", "seq_len", help="Tokens per document."),
    lm: bool = typer.Option(True, help="Also splice into the LM (ΔCE, CE recovered, KL score)."),
    plot: Path = typer.Option(None, help="Write the feature-density histogram here (PNG)."),
    json_: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
) -> None:
    """L0, FVU, dead fraction, shrinkage, density; ΔCE, CE recovered and KL score with document CIs."""
    import json

    from lmlab.config import given
    from lmlab.sae.evaluate import density_plot, evaluate_sae
    from lmlab.sae.saelens import sae_store

    out = evaluate_sae(sae, sae_store(sae, store), lm=lm, **given(n_rows=n_rows, n_docs=n_docs, seq_len=seq_len))
    if plot is not None:
        density_plot(out, plot)
    print(json.dumps(out) if json_ else json.dumps(out, indent=2))


@app.command("label")
def label_cmd(
    sae: Path = typer.Option(..., "--sae", help="An lmlab SAE run directory or a SAELens folder."),
    out: Path = typer.Option(..., help="Directory for labels.jsonl, labels.json and labels.html."),
    domain: str = typer.Option("medical", help="The concept: a domain of the store's corpus (its documents vs the rest)."),
    store: Path = typer.Option(None, help="Activation store (default: the one the lmlab SAE was trained on)."),
    docs: int = option("lmlab.sae.label:label_command", "n_docs", "--docs", help="Documents of the domain, and as many others."),
    latents: int = option("lmlab.sae.label:label_command", "n_latents", "--latents", help="Concept latents chosen."),
    seq_len: int = option("lmlab.sae.label:label_command", "seq_len", help="Tokens per document."),
    split: str = option("lmlab.sae.label:label_command", "split", help="Corpus split the documents come from."),
    min_word_share: float = option("lmlab.sae.label:label_command", "min_word_share",
                                   help="Only latents with at least this share of their activation on the domain's "
                                   "word tokens (not punctuation/layout) are candidates; 0 = all."),
    apply_to: str = typer.Option(None, help="Label the documents of this corpus instead (e.g. embedded-pages, the "
                                 "filtering corpus, or a local path), with the latents and thresholds chosen on the "
                                 "store's corpus; agreement with their entry spans is reported."),
    apply_docs: int = option("lmlab.sae.label:label_command", "apply_docs", help="Documents of --apply-to labelled."),
    apply_split: str = option("lmlab.sae.label:label_command", "apply_split", help="Split of --apply-to."),
    apply_seq_len: int = option("lmlab.sae.label:label_command", "apply_seq_len",
                                help="Tokens per --apply-to document."),
    tokenizer: str = typer.Option(None, help="Also write OUT/labels.bin + .side: the documents in this tokenizer "
                                  "(a prepared dataset dir, a tokenizer.json or an HF tokenizer), labels as the "
                                  "float16 side channel."),
) -> None:
    """Token labels from SAE latents: choose concept latents by document AUC, >= 2 over mean + 4 SD seeds, span
    growth; writes per-token labels with character spans (for transfer to another tokenizer) and an HTML view."""
    import json

    from lmlab.config import given
    from lmlab.sae.label import label_command

    print(json.dumps(label_command(sae, out, domain, store, tokenizer=tokenizer,
                                   **given(n_docs=docs, n_latents=latents, seq_len=seq_len, split=split,
                                           min_word_share=min_word_share, apply_to=apply_to, apply_docs=apply_docs,
                                           apply_split=apply_split, apply_seq_len=apply_seq_len))))

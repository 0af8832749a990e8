"""Demo stage of token-level filtering (`lmlab demo`): a small real version of every step — mixed-domain pages,
SAE token labels on them (the demo SAE), a tiny biLM and its probe, the demo corpus labelled into the side
channel, and baseline vs loss-masked pretraining at two sizes."""

from __future__ import annotations

from pathlib import Path


def demo_stage(out: Path, quick: bool, store_dir: Path, sae_run: Path):
    """-> (Section, JSON-able dict). Writes OUT/filter/{data,labels,fwd,bwd,cls,sweep}."""
    from lmlab.config import apply_overrides, get_preset
    from lmlab.data.prepare import DataConfig, prepare_dataset
    from lmlab.filtering.classifier import train_classifier
    from lmlab.filtering.label import label_dataset
    from lmlab.filtering.sweep import FilterSweepConfig, sweep
    from lmlab.io import read_json
    from lmlab.lm.train import train
    from lmlab.sae.label import label_command

    root = out / "filter"
    data = prepare_dataset(DataConfig(corpus="embedded-pages", vocab_size=1024, tokenizer_train_chars=1_000_000,
                                      max_train_tokens=100_000 if quick else 300_000, max_val_tokens=20_000),
                           root / "data", progress=False)
    if (root / "labels" / "labels.json").is_file():  # a re-run reuses every finished step
        labels = read_json(root / "labels" / "labels.json")
    else:
        labels = label_command(sae_run, root / "labels", "medical", store_dir, n_docs=8 if quick else 40,
                               n_latents=4 if quick else 8, seq_len=48 if quick else 128, apply_to="embedded-pages",
                               apply_docs=24 if quick else 80, apply_seq_len=128 if quick else 256, tokenizer=data)
    for half, rev in (("fwd", "false"), ("bwd", "true")):
        if not (root / half / "summary.json").is_file():
            cfg = apply_overrides(get_preset("lm", "tiny"), [f'data="{data}"', f"reverse={rev}", "ckpt_every=0",
                                                              f"max_steps={30 if quick else 200}", "eval_every=1000"])
            train(cfg, root / half, progress=False)
    cls = read_json(root / "cls" / "classifier.json") if (root / "cls" / "classifier.json").is_file() else \
        train_classifier(root / "labels", root / "fwd", root / "bwd", root / "cls", layers=[1, 2],
                         variants=("bilm", "released", "ltr"))
    lab = label_dataset(root / "cls", data, block_docs=100, progress=False)
    sw = sweep(FilterSweepConfig(data=str(data), series=["baseline", "mask"], sizes=["16x1", "32x1"],
                                 tokens_per_param=5.0 if quick else 20.0, seq_len=64, batch_size=16, evals_per_run=2,
                                 eval_windows=8), root / "sweep", progress=False)
    return _section(labels, cls, lab, sw), {"agreement": labels["applied"]["agreement"], "classifier": {
        k: cls[k] for k in ("layer", "threshold", "val", "test")}, "corpus": lab, "sweep": sw["runs"]}


def _section(labels: dict, cls: dict, lab: dict, sw: dict):
    from lmlab.report.html import Section

    ag = labels["applied"]["agreement"]
    table = {"SAE labels on pages · positive rate by entry domain":
             ", ".join(f"{k} {v:.3f}" for k, v in ag["positive_rate"].items()),
             "SAE labels · precision / recall vs medical entries": f"{ag['precision']:.3f} / {ag['recall']:.3f}"}
    for r in cls["table"]:
        table[f"probe {r['variant']} layer {r['layer']} · test F1 / AUROC"] = \
            f"{r['test']['f1']:.3f} / {r['test']['auroc']:.3f}"
    table["corpus labelled · flagged tokens / documents"] = \
        f"{lab['flagged_token_rate']:.3f} / {lab['flagged_doc_rate']:.3f}"
    for r in sw["runs"]:
        table[f"{r['series']} {r['size']} · loss medical / biology / general"] = \
            f"{r['loss_medical']:.3f} / {r['loss_biology']:.3f} / {r['loss_general']:.3f}"
    text = ("Token-level data filtering, small: dictionary entries joined into mixed-domain pages (medical = forget, "
            "biology = retain), medical tokens labelled by the demo SAE's latents (choice made on single entries), "
            "those labels distilled into a linear probe on a tiny biLM (left-to-right + reversed LM; the released "
            "code's unflipped variant and the forward half alone for comparison), the corpus scored into the "
            "shards' side channel, and baseline vs loss-masked pretraining at two sizes (docs/filtering.md). "
            "At this size the numbers show the plumbing, not the paper's effect.")
    return Section("Token-level filtering: labels, classifier, filtered pretraining", text=text, table=table)

"""`lmlab filter ...`: token-level data filtering — the distilled classifier (more stages: issue 16)."""

from __future__ import annotations

from pathlib import Path

import typer

from lmlab.cli_options import option

app = typer.Typer(no_args_is_help=True)
_C = "lmlab.filtering.classifier:train_classifier"


@app.command("classifier")
def classifier_cmd(
    labels: Path = typer.Option(..., help="Label directory of `lmlab sae label ... --tokenizer DATA` (labels.bin/.side, "
                                "labels.jsonl)."),
    fwd: Path = typer.Option(..., help="Left-to-right lmlab LM run trained on DATA."),
    bwd: Path = typer.Option(None, help="Right-to-left run (`lmlab lm train --set reverse=true`) on DATA; "
                             "needed for the bilm and released variants."),
    out: Path = typer.Option(..., help="Classifier directory: probe.safetensors, doc_probe.safetensors, "
                             "classifier.json."),
    domain: str = option(_C, "domain", help="The forget domain (document targets from entry spans)."),
    layers: str = typer.Option(None, help="Comma-separated layers to sweep [default: all]."),
    variants: str = typer.Option("bilm,released,ltr", help="bilm (correct), released (unflipped second half), "
                                 "ltr (forward half alone)."),
    teacher: str = typer.Option(None, help="Also fit the probe on this LM's own states (the labelling LM, e.g. "
                                "smollm2) at --teacher-layer: the reference the distilled classifier is compared with."),
    teacher_layer: int = typer.Option(15, help="Layer of --teacher (decoder block output)."),
    json_: bool = typer.Option(False, "--json", help="Print exactly one JSON object on stdout."),
) -> None:
    """Distil token labels into a biLM + L-BFGS logistic probe: every (variant, layer), F1-optimal threshold on
    validation documents, F1 / AUROC / precision / recall on test documents; saves the best biLM layer."""
    import json

    from lmlab.cli_options import parse_list
    from lmlab.config import given
    from lmlab.errors import ConfigError
    from lmlab.filtering.classifier import train_classifier

    vs = tuple(parse_list(variants, "--variants", choices=("bilm", "released", "ltr")))
    if bwd is None and any(v != "ltr" for v in vs):
        raise ConfigError("the bilm and released variants need --bwd", "pass a right-to-left run, or --variants ltr")
    info = train_classifier(labels, fwd, bwd, out, layers=parse_list(layers, "--layers", int, minimum=0),
                            variants=vs, **given(domain=domain))
    if teacher is not None:
        from lmlab.filtering.classifier import teacher_probe
        from lmlab.io import write_json

        info["teacher"] = teacher_probe(labels, teacher, teacher_layer)
        write_json(out / "teacher.json", info["teacher"])
    if json_:
        print(json.dumps(info))
        return
    for r in info["table"]:
        print(f"{r['variant']:>8} layer {r['layer']}: test F1 {r['test']['f1']:.3f} AUROC {r['test']['auroc']:.3f} "
              f"P {r['test']['precision']:.3f} R {r['test']['recall']:.3f}")
    if teacher is not None:
        t = info["teacher"]["test"]
        print(f"{'teacher':>8} layer {teacher_layer}: test F1 {t['f1']:.3f} AUROC {t['auroc']:.3f}")
    print(f"saved: biLM layer {info['layer']}, threshold {info['threshold']:.3f}; document classifier test F1 "
          f"{info['doc']['test']['f1']:.3f}")


@app.command("label")
def label_cmd(
    classifier: Path = typer.Option(..., help="Classifier directory (`lmlab filter classifier --out`)."),
    data: Path = typer.Option(..., help="Prepared dataset with the classifier's tokenizer (`lmlab data prepare`)."),
    split: str = typer.Option("train", help="Which shard to label."),
    progress: bool = typer.Option(True, help="Show the progress bar."),
) -> None:
    """p(forget) for every token of DATA/SPLIT.bin into its float16 side channel, and a document probability per
    document (DATA/SPLIT.docflags.npy); resumes after kill -9, the side channel appears only when complete."""
    import json

    from lmlab.filtering.label import label_dataset

    print(json.dumps(label_dataset(classifier, data, split, progress=progress)))


@app.command("sweep")
def sweep_cmd(
    data: Path = typer.Option(..., help="Labelled prepared dataset (`lmlab filter label`)."),
    out: Path = typer.Option(..., help="Sweep directory: one run per series x size x seed, <series>.csv, sweep.json."),
    set_: list[str] = typer.Option([], "--set", help="Override FilterSweepConfig fields: --set sizes='[\"32x2\"]' "
                                   "--set budget=processed --set mask=target."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the planned runs and exit."),
    progress: bool = typer.Option(True, help="Show progress bars."),
) -> None:
    """Filtered pretraining: baseline / document filtering / loss masking / token removal at several sizes
    (torchrun-aware: each run data-parallel); resumable."""
    import json

    from lmlab.config import apply_overrides
    from lmlab.filtering import sweep as S

    cfg = apply_overrides(S.FilterSweepConfig(data=str(data)), list(set_))
    if dry_run:
        print(json.dumps([{"name": r["config"].name, "steps": r["config"].max_steps, "d_nominal": r["d_nominal"],
                           "masked_share": round(r["masked_share"], 4)} for r in S.plan(cfg, out)], indent=1))
        return
    res = S.sweep(cfg, out, progress=progress)
    print(json.dumps({"out": str(out), "runs": len(res["runs"])}))


@app.command("slowdown")
def slowdown_cmd(
    sweep: Path = typer.Option(..., help="A filter sweep directory (its sweep.json)."),
    out: Path = typer.Option(..., help="Directory for slowdown.json and slowdown.png."),
    bootstrap: int = typer.Option(1000, help="Bootstrap resamples of the baseline fit."),
) -> None:
    """Loss-matched baseline compute ratio per series, size and domain (forget, retain, general), nominal and
    processed compute, with bootstrap intervals; loss-vs-compute plot with the baseline's power law."""
    import json

    from lmlab.filtering.slowdown import filter_slowdown, slowdown_plot
    from lmlab.io import write_json

    res = filter_slowdown(sweep / "sweep.json", bootstrap=bootstrap)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "slowdown.json", res)
    slowdown_plot(sweep / "sweep.json", res, out / "slowdown.png")
    for dom, per in res["domains"].items():
        for series, pts in per.items():
            print(f"{dom:>8} {series:>9}: " + "  ".join(f"{p['size']} {p['slowdown_nominal']:.2f}x" for p in pts))
    print(json.dumps({"out": str(out)}))

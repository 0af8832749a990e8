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
    if json_:
        print(json.dumps(info))
        return
    for r in info["table"]:
        print(f"{r['variant']:>8} layer {r['layer']}: test F1 {r['test']['f1']:.3f} AUROC {r['test']['auroc']:.3f} "
              f"P {r['test']['precision']:.3f} R {r['test']['recall']:.3f}")
    print(f"saved: biLM layer {info['layer']}, threshold {info['threshold']:.3f}; document classifier test F1 "
          f"{info['doc']['test']['f1']:.3f}")

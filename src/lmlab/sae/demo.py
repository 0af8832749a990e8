"""Demo stage of the SAE (`lmlab demo`): a small TopK SAE on the demo's SmolLM2 store, its metrics (L0, FVU,
dead latents, ΔCE / CE recovered / KL score with document CIs), the density histogram, and medical-concept token
labels from its latents on held-out documents (highlighted text)."""

from __future__ import annotations

from pathlib import Path


def demo_stage(out: Path, quick: bool, store_dir: Path, data_dir: Path | None = None):
    """-> (Section, JSON-able dict). Writes OUT/sae/ (the run), OUT/sae_density.png, OUT/sae_labels/ (with
    labels.bin/.side in the tokenizer of the prepared dataset `data_dir`, when given)."""
    import json

    from lmlab.config import apply_overrides, get_preset
    from lmlab.report.html import Section
    from lmlab.runs import checkpoint
    from lmlab.sae import train as T
    from lmlab.sae.evaluate import density_plot, evaluate_sae
    from lmlab.sae.label import label_command

    run = out / "sae"
    over = [f"store={json.dumps(str(store_dir))}"] + (["max_steps=40", "batch_size=256", "init_rows=1000",
                                                       "eval_rows=300"] if quick else [])
    cfg = apply_overrides(get_preset("sae", "tiny"), over)
    if not (run / "summary.json").is_file():
        T.train_sae(cfg, run, resume=checkpoint.latest(run) is not None, progress=not quick)
    ev = evaluate_sae(run, store_dir, n_rows=2000 if quick else 10_000, n_docs=6 if quick else 40,
                      seq_len=48 if quick else 128)
    png = density_plot(ev, out / "sae_density.png")
    lab = label_command(run, out / "sae_labels", "medical", store_dir, n_docs=8 if quick else 40,
                        n_latents=4 if quick else 8, seq_len=48 if quick else 128,
                        tokenizer=data_dir if data_dir is not None and (data_dir / "tokenizer.json").is_file() else None)
    lm = ev["lm"]
    table = {"latents · k": f"{ev['n_latents']} · {ev['k']}", "L0": ev["l0"], "FVU (held-out rows)": ev["fvu"],
             "dead latents": f"{100 * ev['dead_frac']:.1f}%", "relative reconstruction bias": ev["rel_bias"],
             "ΔCE (spliced - clean)": f"{lm['delta_ce']:.3f} [{lm['ci95']['delta_ce'][0]:.3f}, "
                                      f"{lm['ci95']['delta_ce'][1]:.3f}]",
             "CE recovered (vs zero ablation)": f"{lm['ce_recovered_zero']:.3f}",
             "KL score": f"{lm['kl_score']:.3f}",
             "label latents (held-out AUC)": ", ".join(f"{i} ({a:.2f})" for i, a in
                                                       zip(lab["choice"]["latents"], lab["choice"]["heldout_auc"])),
             **{f"labels · {k}": v for k, v in lab["quality"].items()},
             **({f"labels in the demo LM's tokenizer · {k}": v for k, v in lab["shard"].items()
                 if k.startswith("positive_rate") or k == "n_tokens"} if "shard" in lab else {})}
    text = ("A TopK sparse autoencoder (AuxK for dead latents) trained on the demo store, scored on held-out "
            "documents: FVU on activations; ΔCE, CE recovered and KL score with its reconstruction spliced into "
            "SmolLM2 at the store's layer. Token labels: the latents whose document means best separate the "
            "corpus's medical entries from the rest; a token is medical when >= 2 of them exceed mean + 4 SD "
            "(measured on other documents), spans grown over positive neighbours. The highlighted view is "
            "sae_labels/labels.html; below, the first labelled medical document. The same labels, carried to the demo "
            "LM's tokenizer by character overlap, are the float16 side channel of sae_labels/labels.bin — the "
            "format the LM trainer's loss mask reads.")
    docs = [json.loads(x) for x in (out / "sae_labels" / "labels.jsonl").read_text().splitlines()]
    return (Section("SAE: sparse autoencoder and token labels", text=text, table=table, images=[str(png)],
                    pre=_marked(docs)), {"eval": {k: v for k, v in ev.items() if k != "density_hist"},
                                         "labels": lab["quality"], "latents": lab["choice"],
                                         "labels_shard": lab.get("shard")})


def _marked(docs: list[dict], width: int = 600) -> str:
    """The first medical document with a labelled token, its labelled characters wrapped in [[...]]."""
    for d in docs:
        if d["domain"] == "medical" and any(d["labels"]):
            marked = [False] * len(d["text"])
            for (s, e), y in zip(d["spans"], d["labels"]):
                if y:
                    marked[s:e] = [True] * (e - s)
            out = "".join(("[[" if m and (i == 0 or not marked[i - 1]) else "") + c
                          + ("]]" if m and (i + 1 == len(marked) or not marked[i + 1]) else "")
                          for i, (c, m) in enumerate(zip(d["text"], marked)))
            return f"{d['id']}: {out[:width]}"
    return "no medical document got a labelled token"

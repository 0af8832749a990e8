"""Demo stage of the GLP applications (`lmlab demo`): one steering example on the same prompt
(unsteered, plain addition, GLP SDEdit, GLP delta) and the 1-D probing table, on the demo's store and GLP."""

from __future__ import annotations

from pathlib import Path

PROMPT = "The weather this morning was"


def _steering(store_dir: Path, glp_dir: Path, quick: bool) -> dict:
    import torch

    from lmlab.acts.positions import store_prepend_bos
    from lmlab.glp import steering as S
    from lmlab.glp.load import glp_context
    from lmlab.models import load_causal_lm

    glp, st = glp_context(glp_dir, store_dir)
    model, tok = load_causal_lm(st.model)
    pos, neg = S.concept_texts("sentiment")
    k = 12 if quick else 50
    d = S.diffmean(model, tok, st.layer, pos[:k], neg[:k], name="sentiment", prepend_bos=store_prepend_bos(st))
    mean, r = st.stats["mean"].float(), 1.0
    alpha = r * st.stats["mean_norm"]
    rows = {}
    for mode in ("unsteered", "plain", "sdedit", "delta"):
        fn = None if mode == "unsteered" else S.Steer(d.w, alpha, mode, glp, S.PAPER_SIGMA_S, 10, 0)
        p, c, _ = S.generate(model, tok, [PROMPT], st.layer, fn, 12 if quick else 24)
        m = S.continuation_metrics(model, tok, st.layer, p, c, d, mean, S.keywords("sentiment"))
        rows[mode] = {"text": PROMPT + tok.decode(c[0], skip_special_tokens=True), "nll": float(m["nll"][0]),
                      "concept": float(m["concept"][0]),
                      "retention": float(torch.cat(fn.log).mean()) if fn is not None and fn.log else None}
    return {"concept": "sentiment (positive - negative DiffMean)", "r": r, "alpha": alpha, "rows": rows}


def demo_stage(out: Path, quick: bool, store_dir: Path, glp_dir: Path):
    """-> (Section, JSON-able dict). Writes out/glp_apps_probe.png."""
    from lmlab.glp import probe as P
    from lmlab.report.html import Section

    steer = _steering(Path(store_dir), Path(glp_dir), quick)
    tasks = (["domain_medical", "domain_python", "medical_vs_general", "tok_capitalised", "tok_numeric",
              "tok_in_parens", "tok_punctuation", "tok_word_start", "tok_line_start", "tok_in_quotes"])
    cfg = P.ProbeConfig(glp=str(glp_dir), store=str(store_dir), tasks=tasks if quick else None,
                        docs_per_domain=24 if quick else 80, seq_len=32 if quick else 48,
                        max_per_class=150 if quick else 400, n_boot=2000 if quick else 10_000, dense=not quick)
    res = P.probe(cfg, progress=False)
    png = P.probe_plot(res, Path(out) / "glp_apps_probe.png", title="1-D probing on the demo GLP")
    table = {f"steer · {k} (NLL {v['nll']:.2f}, concept {v['concept']:.2f}"
             + (f", retention {v['retention']:.2f})" if v["retention"] is not None else ")"): v["text"]
             for k, v in steer["rows"].items()}
    table.update({f"1-D probe mean test AUC · {k}": f"{v['mean']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]"
                  for k, v in res["mean"].items()})
    text = (f"Steering at layer {res['layer']} along a sentiment DiffMean direction, r = {steer['r']} "
            f"(alpha = r x mean activation norm = {steer['alpha']:.1f}), on the LAST position of every forward call; "
            "plain = activation addition, sdedit = the paper's GLP post-processing (noise to sigma 0.474, 10 Euler "
            "steps), delta = lmlab's differential variant (only the prior's response to the edit, orthogonal to "
            "it). NLL = continuation NLL under the unsteered model; concept 0/1 = negative/positive set mean. "
            f"Probing: best single feature per task ({len(res['tasks'])} tasks), meta = GLP meta-neurons, raw = "
            "residual dimensions, mlp = the LM's MLP neurons at that layer; 95% bootstrap CI over tasks. The demo's "
            "GLP is tiny and briefly trained: see docs/results.md for the real numbers.")
    return (Section("GLP applications: on-manifold steering and 1-D probing", text=text, table=table,
                    images=[str(png)]), {"steer": steer, "probe_mean": res["mean"],
                                         "probe_tasks": {t["name"]: {k: t[k]["test_auc"] for k in res["mean"]
                                                                     if k in t} for t in res["tasks"]}})

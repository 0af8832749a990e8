"""Demo stage of the GLP applications (`lmlab demo`): one steering example — unsteered, plain addition and the
GLP (the paper's SDEdit by default) side by side on the same prompts, scored by a held-out concept classifier,
NLL and distinct-2 (issue 19) — and the 1-D probing table, on the demo's store and GLP."""

from __future__ import annotations

from pathlib import Path

PROMPT = "My neighbour told me that"
"""The prompt whose continuation each row shows (the others only enter the mean scores)."""
STEER_CONCEPT = "medical"
"""Demo concept (a corpus concept: the classifier trains on its held-out val documents)."""
STEER_R = 0.5
"""Demo strength r (alpha = r x mean activation norm), from experiments/glp_steer_frontier.py (docs/results.md,
issue 19 part 2; 100 prompts, SmolLM2 L15, medical): plain addition at every position, r = 0.5, raises the concept
probability 0.30 -> 0.60 with distinct-2 0.955 and 97% of continuations passing the fluency rule ("...larynx to
produce the vocal cords. The larynx is a cartilage ring..."), at an NLL of 3.10 vs 1.37 unsteered; at r >= 1.5
the text degenerates into loops."""
STEER_POSITIONS = "all"
"""Where the edit applies (steering/modes.py steer_positions): all prompt positions and every generated token."""
STEER_GLP_MODE = "sdedit"
"""The GLP row's mode (steering/modes.py)."""
STEER_SIGMA_S = 0.25
"""The GLP row's noise level: the frontier's only GLP setting as fluent as plain addition at matched concept
(NLL gap +0.045 [-0.117, +0.221] at every position; the paper's 0.4742 costs +0.3 to +0.8 nats of NLL there);
paper_steps(0.25) = 6 Euler steps."""


def _steer_rows(model, tok, layer, prompts, d, probe, glp, alpha, mode, n_tok) -> dict:
    """unsteered / plain / GLP rows: the first prompt's text, mean scores over the prompts."""
    import torch

    from lmlab.glp import steering as S

    rows = {}
    for name in ("unsteered", "plain", mode):
        fn = None if name == "unsteered" else S.Steer(d.w, alpha, name, glp if name != "plain" else None,
                                                        sigma_s=STEER_SIGMA_S, steps=S.paper_steps(STEER_SIGMA_S))
        p, c, _ = S.generate(model, tok, prompts, layer, fn, n_tok, positions=STEER_POSITIONS)
        m = S.continuation_metrics(model, tok, layer, p, c, d, None, None, probe=probe)
        rows[name] = {"text": prompts[0] + tok.decode(c[0], skip_special_tokens=True),
                      **{k: float(m[k].mean()) for k in ("probe", "nll", "distinct2", "fluent")},
                      "retention": float(torch.cat(fn.log).mean()) if fn is not None and fn.log else None}
    return rows


def _steering(store_dir: Path, glp_dir: Path, quick: bool, concept: str = STEER_CONCEPT, r: float = STEER_R,
              mode: str = STEER_GLP_MODE) -> dict:
    from lmlab.acts.positions import store_prepend_bos
    from lmlab.glp import steering as S
    from lmlab.glp.load import glp_context
    from lmlab.models import load_causal_lm

    glp, st = glp_context(glp_dir, store_dir)
    model, tok = load_causal_lm(st.model)
    bos = store_prepend_bos(st)
    d = S.find_direction(model, tok, st.layer, st.d_model, concept, None, 16 if quick else 32, bos)
    probe = S.train_concept_probe(model, tok, st.layer, concept, 30 if quick else 60, seq_len=32, prepend_bos=bos)
    n = 2 if quick else 4
    prompts = [PROMPT] + [p for p in S.load_prompts(None, n + 1) if p != PROMPT][: n - 1]
    alpha = r * st.stats["mean_norm"]
    rows = _steer_rows(model, tok, st.layer, prompts, d, probe, glp, alpha, mode, 12 if quick else 24)
    return {"concept": concept, "r": r, "alpha": alpha, "mode": mode, "n_prompts": len(prompts),
            "probe": probe.describe(), "rows": rows}


def _steer_text(steer: dict, layer: int) -> str:
    """What the steering rows are and, in one line, what their numbers mean."""
    p = steer["probe"]
    return (f"Steering at layer {layer} along a {steer['concept']} DiffMean direction, r = {steer['r']} (alpha = r x "
            f"mean activation norm = {steer['alpha']:.1f}), at {STEER_POSITIONS} positions; plain = activation "
            f"addition, {steer['mode']} = the GLP post-processing from sigma_s {STEER_SIGMA_S} (steering/modes.py). "
            f"Each row: the "
            f"first prompt's continuation; scores are means over {steer['n_prompts']} prompts. "
            f"How to read them: concept = p({steer['concept']}) from a classifier trained on held-out "
            f"{steer['concept']} text (held-out document AUC {p['auc_doc']:.2f}), higher than the unsteered row = "
            "on-concept; NLL = nats/token under the unsteered model, near the unsteered row = fluent; distinct-2 = "
            "unique token bigrams, low = repetition loops (which also LOWER the NLL); steering works when concept "
            "rises while NLL and distinct-2 stay near the unsteered row. On 100 prompts with the best CPU prior, "
            "no GLP mode beat plain addition at matched concept (docs/results.md, issue 19 part 2). ")


def demo_stage(out: Path, quick: bool, store_dir: Path, glp_dir: Path, concept: str = STEER_CONCEPT,
               r: float = STEER_R, mode: str = STEER_GLP_MODE):
    """-> (Section, JSON-able dict). Writes out/glp_apps_probe.png. concept / r / mode: the steering example's."""
    from lmlab.glp import probe as P
    from lmlab.report.html import Section

    steer = _steering(Path(store_dir), Path(glp_dir), quick, concept, r, mode)
    tasks = (["domain_medical", "domain_python", "medical_vs_general", "tok_capitalised", "tok_numeric",
              "tok_in_parens", "tok_punctuation", "tok_word_start", "tok_line_start", "tok_in_quotes"])
    cfg = P.ProbeConfig(glp=str(glp_dir), store=str(store_dir), tasks=tasks if quick else None,
                        docs_per_domain=24 if quick else 80, seq_len=32 if quick else 48,
                        max_per_class=150 if quick else 400, n_boot=2000 if quick else 10_000, dense=not quick)
    res = P.probe(cfg, progress=False)
    png = P.probe_plot(res, Path(out) / "glp_apps_probe.png", title="1-D probing on the demo GLP")
    table = {f"steer · {k} (concept {v['probe']:.2f}, NLL {v['nll']:.2f}, distinct-2 {v['distinct2']:.2f}"
             + (f", retention {v['retention']:.2f})" if v["retention"] is not None else ")"): v["text"]
             for k, v in steer["rows"].items()}
    table.update({f"1-D probe mean test AUC · {k}": f"{v['mean']:.3f} [{v['lo']:.3f}, {v['hi']:.3f}]"
                  for k, v in res["mean"].items()})
    text = (_steer_text(steer, res["layer"])
            + f"Probing: best single feature per task ({len(res['tasks'])} tasks), meta = GLP meta-neurons, raw = "
            "residual dimensions, mlp = the LM's MLP neurons at that layer; 95% bootstrap CI over tasks. The demo's "
            "GLP is tiny and briefly trained: see docs/results.md for the real numbers.")
    return (Section("GLP applications: on-manifold steering and 1-D probing", text=text, table=table,
                    images=[str(png)]), {"steer": steer, "probe_mean": res["mean"],
                                         "probe_tasks": {t["name"]: {k: t[k]["test_auc"] for k in res["mean"]
                                                                     if k in t} for t in res["tasks"]}})

"""Issue 19 part 2: on-manifold steering at MATCHED concept score (Luo et al. 2026 §4a; glp.md §4a).

Every condition (mode, positions, sigma_s, r) steers the same >= 100 neutral prompts along the concept's
DiffMean direction (train-split documents) with greedy decoding, and is scored by
  - concept: a logistic probe on the unsteered model's layer-L activations trained on HELD-OUT val-split text of
    the concept vs the other domains (steering/classifier.py; its held-out AUC is in the output), mean
    probability over the continuation's tokens; the DiffMean projection is kept as a secondary column;
  - fluency: continuation NLL under the unsteered model, distinct-1/2, repetition, word/blank fractions and the
    FLUENT_RULE pass rate (steering/quality.py: newline / punctuation loops fail it).
Then steering/frontier.py interpolates every label's fluency at matched concept levels along its monotone
frontier and compares it with plain addition at the same positions (paired bootstrap over prompts).

Conditions: every mode at the main setting (the FIRST --positions and FIRST --sigma-s value); the modes in --vary
also one factor at a time: every other positions value at the first sigma_s, every other sigma_s at the first
positions value. plain has no sigma. The defaults (4 modes x 6 r + plain@all + sdedit@all + sdedit at sigma_s 0.25:
42 conditions, 100 prompts x 16 tokens) were estimated at 23 min + ~3 min setup with OMP_NUM_THREADS=1 on a
loaded 2-core machine (2 threads there: 52 min, oversubscribed; the script prints its own calibrated estimate);
add orth / delta with --modes. Steps per sigma_s: the paper's grid density (10 NFEs at
0.4742, 6 at 0.25) unless --steps is given.

    OMP_NUM_THREADS=1 python experiments/glp_steer_frontier.py --glp RUN --out OUT [--estimate-only]
    python experiments/glp_steer_frontier.py --glp RUN --out OUT --prompts 6 --rs 0,1.5 --max-new-tokens 8  # smoke

Resumable: each condition's per-prompt results land in OUT/conditions/KEY.json as they finish and are skipped on
a rerun (a rerun with other prompt/direction settings is refused); the analysis uses every condition file in OUT,
so grids can be added in later runs. Writes OUT/frontier.json and OUT/frontier.png.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

PAPER_SIGMA = 0.4742
SETUP_KEYS = ("glp", "concept", "prompts", "max_new_tokens", "seed", "n_docs", "probe_docs")
COLS = ("probe", "concept", "nll", "distinct1", "distinct2", "repetition", "word_frac", "blank_frac", "fluent",
        "keyword")


def args_parser() -> argparse.ArgumentParser:
    fl = lambda s: [float(x) for x in s.split(",") if x]
    ls = lambda s: [x for x in s.split(",") if x]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--glp", required=True, help="GLP run directory (its store gives model, layer, mean norm)")
    ap.add_argument("--store", default=None, help="activation store (default: the GLP's)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--concept", default="medical", help="a corpus concept: medical | python")
    ap.add_argument("--prompts", type=int, default=100, help="neutral prompts (>= 100 for the result)")
    ap.add_argument("--rs", type=fl, default=fl("0,0.5,1,1.5,2,3"), help="strengths r, to saturation")
    ap.add_argument("--modes", type=ls, default=ls("plain,sdedit,x0,guided"),
                    help="of plain,sdedit,x0,orth,delta,guided")
    ap.add_argument("--positions", type=ls, default=ls("last,all"), help="first = the main grid's")
    ap.add_argument("--sigma-s", type=fl, default=fl(f"{PAPER_SIGMA},0.25"), help="first = the main grid's")
    ap.add_argument("--vary", type=ls, default=ls("plain,sdedit"),
                    help="modes also run at the other positions / sigma_s values (one factor at a time)")
    ap.add_argument("--steps", type=int, default=0, help="Euler steps (0: the paper's density per sigma_s)")
    ap.add_argument("--max-new-tokens", type=int, default=16, help="greedy tokens (issue 5: 16; paper: 20)")
    ap.add_argument("--batch", type=int, default=100, help="prompts per generate call")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-docs", type=int, default=128, help="train documents per side for DiffMean")
    ap.add_argument("--probe-docs", type=int, default=200, help="val documents of the concept for the probe")
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--estimate-only", action="store_true", help="print the plan and time estimate, then stop")
    ap.add_argument("--analyse-only", action="store_true", help="skip generation; analyse the files in OUT")
    return ap


def plan(a) -> list[dict]:
    """The conditions (module docstring): key, label, baseline label, mode, positions, sigma_s, steps, r."""
    from lmlab.glp.steering import check_mode, check_positions, paper_steps

    out = []
    for m in a.modes:
        check_mode(m, True)
        p0, s0 = a.positions[0], a.sigma_s[0]  # one factor at a time from the main setting
        combos = [(p0, s0)] + ([(p, s0) for p in a.positions[1:]] + [(p0, s) for s in a.sigma_s[1:]]
                               if m in a.vary else [])
        if m == "plain":
            combos = list(dict.fromkeys((p, None) for p, _ in combos))
        for p, s in combos:
            check_positions(p)
            steps = 0 if s is None else (a.steps or paper_steps(s))
            label = f"{m}@{p}" + ("" if s is None or abs(s - PAPER_SIGMA) < 1e-4 else f",sigma{s:g}")
            for r in a.rs:
                key = f"{m}_{p}_" + ("" if s is None else f"s{s:.4f}_n{steps}_") + f"r{r:g}"
                out.append({"key": key, "label": label, "baseline": f"plain@{p}", "mode": m, "positions": p,
                            "sigma_s": s, "steps": steps, "r": r})
    return out


def setup(a, out: Path):
    """Model, GLP, store, prompts, the DiffMean direction and the concept probe (cached in OUT)."""
    from lmlab.acts.positions import store_prepend_bos
    from lmlab.glp import steering as S
    from lmlab.glp.load import glp_context
    from lmlab.io import read_json, save_safetensors, write_json
    from lmlab.models import load_causal_lm

    glp, store = glp_context(a.glp, a.store)
    model, tok = load_causal_lm(store.model)
    prompts = S.load_prompts(None, a.prompts)
    if len(prompts) < a.prompts:
        raise SystemExit(f"only {len(prompts)} shipped prompts; ask for at most that many")
    info = {"glp": str(a.glp), "concept": a.concept, "prompts": len(prompts), "max_new_tokens": a.max_new_tokens,
            "seed": a.seed, "n_docs": a.n_docs, "probe_docs": a.probe_docs}
    cache = out / "setup.safetensors"
    if (out / "setup.json").is_file() and cache.is_file():
        old = read_json(out / "setup.json")
        if diff := [k for k in SETUP_KEYS if old.get(k) != info[k]]:
            raise SystemExit(f"{out} was run with other {', '.join(diff)}: use a new --out")
        from safetensors.torch import load_file

        t = load_file(str(cache))
        d = S.Direction(t["direction"], old["s_pos"], old["s_neg"], a.concept)
        q = old["probe"]
        p = S.ConceptProbe(t["probe_w"], q["b"], a.concept, store.layer, q["auc_token"], q["auc_doc"],
                           q.get(f"auc_first{S.classifier.SHORT}", float("nan")), tuple(q["n_docs"]))
        return glp, store, model, tok, prompts, d, p, old
    t0 = time.perf_counter()
    d = S.find_direction(model, tok, store.layer, store.d_model, a.concept, None, a.n_docs, store_prepend_bos(store))
    p = S.train_concept_probe(model, tok, store.layer, a.concept, a.probe_docs,
                              prepend_bos=store_prepend_bos(store), seed=a.seed)
    info.update(s_pos=d.s_pos, s_neg=d.s_neg, layer=store.layer, model=store.model,
                mean_norm=store.stats["mean_norm"], glp_info=glp.info.describe(),
                probe={**p.describe(), "b": p.b}, probe_vs_diffmean_cos=float(
                    torch.nn.functional.cosine_similarity(p.w, d.w, dim=0)),
                setup_s=time.perf_counter() - t0)
    save_safetensors(cache, {"direction": d.w.contiguous(), "probe_w": p.w.contiguous()})
    write_json(out / "setup.json", info)
    return glp, store, model, tok, prompts, d, p, info


def run_one(c: dict, ctx) -> dict:
    """Generate and score one condition -> its JSON record (per-prompt columns, retention, timing, texts)."""
    from lmlab.glp import steering as S

    glp, store, model, tok, prompts, d, probe, a = ctx
    alpha = c["r"] * store.stats["mean_norm"]
    st = S.Steer(d.w, alpha, c["mode"], glp if c["mode"] != "plain" else None,
                 c["sigma_s"] or PAPER_SIGMA, c["steps"] or 10, a.seed)
    p_ids, c_ids, secs = S.generate(model, tok, prompts, store.layer, st, a.max_new_tokens, a.batch, c["positions"])
    m = S.continuation_metrics(model, tok, store.layer, p_ids, c_ids, d, None, S.keywords(a.concept), probe=probe)
    ret = torch.cat(st.log) if st.log else torch.tensor([float("nan")])
    return {**c, "alpha": alpha, **{k: m[k].tolist() for k in COLS if k in m},
            "retention": float(ret.mean()), "retention_min": float(ret.min()), "gen_s": secs,
            "tokens_per_s": sum(map(len, c_ids)) / secs, "texts": [tok.decode(x, skip_special_tokens=True)
                                                                   for x in c_ids]}


def calibrate(ctx) -> dict:
    """Seconds per generated token-batch step of the LM, per denoiser row-NFE and per scored token (measured)."""
    from lmlab.glp import steering as S

    glp, store, model, tok, prompts, d, probe, a = ctx
    b = prompts[: a.batch]
    t0 = time.perf_counter()
    p_ids, c_ids, _ = S.generate(model, tok, b, store.layer, None, 4, a.batch)
    step = (time.perf_counter() - t0) / 4
    t0 = time.perf_counter()
    S.continuation_metrics(model, tok, store.layer, p_ids, c_ids, d, None, None, probe=probe)
    score = (time.perf_counter() - t0) / sum(len(p) + len(c) for p, c in zip(p_ids, c_ids))
    x = torch.randn(256, store.d_model)
    t0 = time.perf_counter()
    with torch.no_grad():
        S.denoise(glp, x, torch.randn_like(x), 0.5, 3)
    nfe = (time.perf_counter() - t0) / (256 * 3)
    prompt_len = sum(len(p) - 1 for p in p_ids) / len(p_ids)  # real positions minus the sink
    return {"lm_step_s": step, "score_s_per_token": score, "glp_s_per_row_nfe": nfe, "prompt_len": prompt_len}


def estimate(c: dict, cal: dict, a) -> float:
    """Seconds for one condition from the calibration: LM steps + denoiser rows x NFEs + scoring."""
    n, T = a.prompts, a.max_new_tokens
    nfe = {"plain": 0, "x0": 1, "delta": 2 * c["steps"]}.get(c["mode"], c["steps"])
    rows = n * (T + (cal["prompt_len"] - 1 if c["positions"] == "all" else 0))
    batches = -(-n // a.batch)
    return batches * T * cal["lm_step_s"] + rows * nfe * cal["glp_s_per_row_nfe"] + \
        n * (cal["prompt_len"] + T) * cal["score_s_per_token"]


def analyse(out: Path, info: dict, n_boot: int) -> dict:
    """Every condition file in OUT -> frontier.json (per-condition means, frontiers, matched differences,
    verdicts) and frontier.png."""
    import numpy as np

    from lmlab.glp.steering import frontier_plot, matched_frontier
    from lmlab.io import read_json, write_json

    recs = [read_json(f) for f in sorted((out / "conditions").glob("*.json"))]
    res = matched_frontier(recs, "probe", n_boot=n_boot, seed=0)
    res["conditions"] = [{k: c[k] for k in ("label", "mode", "positions", "sigma_s", "steps", "r", "retention",
                                            "retention_min", "tokens_per_s")}
                         | {k: float(np.mean(c[k])) for k in COLS if k in c} | {"samples": c["texts"][:3]}
                         for c in sorted(recs, key=lambda c: (c["label"], c["r"]))]
    res["verdicts"] = verdicts(res)
    res["setup"] = info
    write_json(out / "frontier.json", res)
    frontier_plot(res, out / "frontier.png", title=f"steering {info['concept']} at layer {info.get('layer')}")
    return res


def verdicts(res: dict) -> list[str]:
    """One line per (label, metric): matched-concept levels where the label beats / loses to its baseline
    (95% CI excluding 0; lower NLL, higher distinct-2 and fluent rate are better)."""
    lines = []
    for lab in dict.fromkeys(m["label"] for m in res["matched"]):
        for k, sign in (("nll", -1), ("distinct2", 1), ("fluent", 1)):
            rows = [m for m in res["matched"] if m["label"] == lab and m["metric"] == k and m["lo"] is not None]
            win = [m["level"] for m in rows if m["level"] != "mean" and (m["hi"] < 0 if sign < 0 else m["lo"] > 0)]
            lose = [m["level"] for m in rows if m["level"] != "mean" and (m["lo"] > 0 if sign < 0 else m["hi"] < 0)]
            mean = next((m for m in rows if m["level"] == "mean"), None)
            lines.append(f"{lab} vs {rows[0]['baseline'] if rows else '?'} {k}: better at concept "
                         f"{[round(x, 3) for x in win]}, worse at {[round(x, 3) for x in lose]}" +
                         (f"; mean gap {mean['diff']:+.3f} [{mean['lo']:+.3f}, {mean['hi']:+.3f}]" if mean else ""))
    return lines


def main():
    a = args_parser().parse_args()
    out = Path(a.out)
    (out / "conditions").mkdir(parents=True, exist_ok=True)
    todo = [c for c in plan(a) if not (out / "conditions" / f"{c['key']}.json").is_file()]
    glp, store, model, tok, prompts, d, probe, info = setup(a, out)
    print(f"probe held-out AUC: token {info['probe']['auc_token']:.3f}, document {info['probe']['auc_doc']:.3f}, "
          f"first 16 tokens {info['probe'].get('auc_first16', float('nan')):.3f}; setup {info['setup_s']:.0f}s; "
          f"{len(prompts)} prompts; {len(todo)} to run", file=sys.stderr)
    ctx = (glp, store, model, tok, prompts, d, probe, a)
    if todo and not a.analyse_only:
        cal = calibrate(ctx)
        est = [estimate(c, cal, a) for c in todo]
        print(f"estimated {sum(est) / 60:.1f} min for {len(todo)} conditions on "
              f"{torch.get_num_threads()} threads ({cal})", file=sys.stderr)
        if not a.estimate_only:
            run_all(todo, est, ctx, out)
    if not a.estimate_only and any((out / "conditions").glob("*.json")):
        res = analyse(out, info, a.n_boot)
        print("\n".join(res["verdicts"]), file=sys.stderr)


def run_all(todo: list[dict], est: list[float], ctx, out: Path) -> None:
    from lmlab.io import write_json

    t0 = time.perf_counter()
    for i, c in enumerate(todo):
        rec = run_one(c, ctx)
        write_json(out / "conditions" / f"{c['key']}.json", rec)
        mean = {k: sum(rec[k]) / len(rec[k]) for k in ("probe", "nll", "distinct2", "fluent")}
        left = sum(est[i + 1:]) * (time.perf_counter() - t0) / max(1e-9, sum(est[: i + 1]))
        print(f"[{i + 1}/{len(todo)}] {c['label']} r={c['r']:g}: probe {mean['probe']:.3f} NLL {mean['nll']:.3f} "
              f"distinct-2 {mean['distinct2']:.3f} fluent {mean['fluent']:.2f} retention {rec['retention']:.3f} "
              f"({rec['gen_s']:.0f}s; ~{left / 60:.1f} min left)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

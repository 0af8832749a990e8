"""Judging steering without an API judge: greedy continuations under a steering condition, their metrics,
the (mode x r) sweep with bootstrap CIs and its concept-vs-fluency Pareto plot, and one-prompt steering.

Metrics: fluency = mean NLL of the continuation under the UNSTEERED model; concept = DiffMean score of the
continuation's layer-L activations read by the unsteered model, scaled so that the negative set's mean is 0
and the positive set's mean is 1; keyword score = fraction of continuation words in the concept's keyword
list (where one is shipped).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lmlab.errors import ConfigError, DataError
from lmlab.glp.flow import check_sigma
from lmlab.glp.load import glp_context
from lmlab.glp.steering.directions import (
    CONCEPT_DIR,
    Direction,
    check_direction_args,
    find_direction,
    keywords,
)
from lmlab.glp.steering.modes import PAPER_SIGMA_S, Steer, check_mode, check_positions, steer_positions


# ---- generation and metrics --------------------------------------------------------------------------------
@torch.no_grad()
def generate(model, tok, prompts: list[str], layer: int, fn=None, max_new_tokens: int = 20,
             batch: int = 64, positions: str = "last") -> tuple[list[list[int]], list[list[int]], float]:
    """Greedy continuations with the edit fn (None: unsteered) at the last position of every forward call, or
    at every real prompt position and every generated token (positions="all"; `steer_positions`). Prompts are
    left-padded, so the last position of the prefill is every row's last prompt token.
    -> (prompt ids, continuation ids, seconds)."""
    import time

    from lmlab.acts.positions import encode_docs, keep_positions, pad_batch, pad_id

    check_positions(positions)
    enc = encode_docs(tok, prompts, 512)
    pad = pad_id(tok)
    conts, t0 = [], time.perf_counter()
    for i in range(0, len(enc), batch):
        ids, mask = pad_batch(enc[i:i + batch], pad, side="left")
        T = ids.shape[1]
        ctx = (steer_positions(model, layer, fn, positions, keep_positions(tok, ids, mask))
               if fn is not None else contextlib.nullcontext())
        with ctx:
            out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=max_new_tokens,
                                 min_new_tokens=max_new_tokens, pad_token_id=pad)
        conts += [o[T:].tolist() for o in out]
    return enc, conts, time.perf_counter() - t0


@torch.no_grad()
def continuation_metrics(model, tok, layer: int, prompt_ids: list[list[int]], cont_ids: list[list[int]],
                         d: Direction, mean: torch.Tensor, kw: set[str] | None = None,
                         batch: int = 64, probe=None) -> dict[str, torch.Tensor]:
    """Per prompt (n,): NLL of the continuation under the unsteered model (mean over its tokens), concept
    score (mean over continuation positions of <a, w>, scaled to the concept sets: negative-set mean 0,
    positive-set mean 1), keyword fraction, and the degeneration measures of steering/quality.py (word_frac,
    distinct1/2, repetition, fluent: repeated punctuation has a LOW unsteered NLL, so these report it). With a
    `probe` (steering/classifier.ConceptProbe), "probe" = its mean predicted probability over the continuation's
    positions. Right-padded batches (causal: padding never affects real positions)."""
    from lmlab.acts.hooks import read_residual
    from lmlab.acts.positions import pad_batch, pad_id
    from lmlab.glp.steering.quality import quality

    w, span = d.w.float(), (d.s_pos - d.s_neg) or 1.0
    cols: dict[str, list[float]] = {k: [] for k in ("nll", "concept", "keyword", "probe")}
    for i in range(0, len(prompt_ids), batch):
        ps, cs = prompt_ids[i:i + batch], cont_ids[i:i + batch]
        ids, mask = pad_batch([p + c for p, c in zip(ps, cs)], pad_id(tok))
        with read_residual(model, layer) as got:
            logits = model(ids, attention_mask=mask).logits.float()  # (b, T, vocab)
        resid = got[0].float()  # (b, T, d)
        proj = resid @ w  # (b, T)
        pp = probe.prob(resid) if probe is not None else None  # (b, T)
        for r, (p, c) in enumerate(zip(ps, cs)):
            lo, hi = len(p), len(p) + len(c)
            cols["nll"].append(torch.nn.functional.cross_entropy(logits[r, lo - 1:hi - 1], torch.tensor(c)).item())
            cols["concept"].append((float(proj[r, lo:hi].mean()) - d.s_neg) / span)
            cols["probe"].append(float(pp[r, lo:hi].mean()) if pp is not None else float("nan"))
            text = tok.decode(c, skip_special_tokens=True)
            words = [x.strip(".,;:!?\"'()[]").lower() for x in text.split()]
            cols["keyword"].append(sum(x in kw for x in words) / max(1, len(words)) if kw else float("nan"))
            for k, v in quality(c, text).items():
                cols.setdefault(k, []).append(v)
    if probe is None:
        del cols["probe"]
    return {k: torch.tensor(v) for k, v in cols.items()}


def load_prompts(path: str | Path | None = None, n: int | None = None) -> list[str]:
    """Prompt prefixes: the shipped neutral list (or a text file, one per line; '#' lines skipped)."""
    path = Path(path) if path else CONCEPT_DIR / "prompts.txt"
    if not path.is_file():
        raise DataError(f"no prompt file {path}", "give a text file with one prompt per line")
    lines = [x.strip() for x in path.read_text().splitlines() if x.strip() and not x.startswith("#")]
    if not lines:
        raise DataError(f"{path} holds no prompts", "one prompt per line")
    return lines[:n] if n else lines



# ---- sweep: r grid x modes -> concept-vs-fluency Pareto ------------------------------------------------------
@dataclass
class SteerSweepConfig:
    glp: str | None = None
    """GLP: a run directory (its store gives the model, layer and mean norm), an official checkpoint folder or a
    hub id (these need `store`)."""
    store: str | None = None
    """Activation store (default: the GLP's)."""
    concept: str | None = "medical"
    """Concept set: medical | python | sentiment | a .json with positive/negative lists."""
    vector: str | None = None
    """A steering direction from a safetensors file instead of DiffMean."""
    modes: list[str] = field(default_factory=lambda: ["plain", "sdedit", "x0", "delta"])
    """Conditions: plain | sdedit (paper, 10 NFEs) | x0 (1 NFE) | orth | delta | guided (see steering/modes.py)."""
    positions: str = "last"
    """Edited positions: last (the paper: last position of every forward call) | all (every real prompt position,
    then every generated token)."""
    rs: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    """Relative strengths r (alpha = r * mean activation norm)."""
    sigma_s: float = PAPER_SIGMA_S
    """Start noise level of the post-processing (paper 0.4742)."""
    steps: int = 10
    """Euler steps (NFEs) of sdedit / orth / delta."""
    prompts: str | None = None
    """Prompt file (default: the shipped neutral prefixes)."""
    n_prompts: int = 100
    """Prompts used (>= 100 for the science result)."""
    max_new_tokens: int = 20
    """Greedy tokens per continuation (paper: 20)."""
    n_docs: int = 128
    """Documents per side for DiffMean."""
    batch: int = 100
    """Prompts per generate call."""
    seed: int = 0
    """Noise seed (each condition reseeds)."""
    n_boot: int = 2000
    """Bootstrap resamples over prompts for the CIs."""
    judge_url: str | None = None
    """Optional external judge (off by default): an OpenAI-compatible /v1 root rating each continuation's
    concept presence and fluency 0-2 (glp/judge.py); the API key is read from $OPENAI_API_KEY if set."""
    judge_model: str = "gpt-4o-mini"
    """Model name sent to the judge endpoint."""


def run_condition(model, tok, layer: int, prompts: list[str], d: Direction, mean: torch.Tensor, mode: str,
                  alpha: float, glp, cfg: SteerSweepConfig, kw) -> dict:
    """Generate under one (mode, alpha) and score it: per-prompt arrays + retention + tokens/s."""
    st = Steer(d.w, alpha, mode, glp, cfg.sigma_s, cfg.steps, cfg.seed)
    p_ids, c_ids, secs = generate(model, tok, prompts, layer, st, cfg.max_new_tokens, cfg.batch, cfg.positions)
    m = continuation_metrics(model, tok, layer, p_ids, c_ids, d, mean, kw)
    ret = torch.cat(st.log) if st.log else torch.tensor([float("nan")])
    n_tok = sum(map(len, c_ids))
    texts = [tok.decode(c, skip_special_tokens=True) for c in c_ids]
    if cfg.judge_url:
        from lmlab.glp.judge import judge_texts

        scores = judge_texts(texts, d.name, cfg.judge_url, cfg.judge_model)
        m = {**m, **{k: torch.tensor(v, dtype=torch.float64) for k, v in scores.items()}}
    return {"mode": mode, "alpha": alpha, **{k: v.tolist() for k, v in m.items()},
            "retention": float(ret.mean()), "retention_min": float(ret.min()), "tokens_per_s": n_tok / secs,
            "samples": texts[:3], "texts": texts}


def steer_sweep(cfg: SteerSweepConfig, out: str | Path, progress: bool = True) -> dict:
    """Every (mode, r) condition on the same prompts; OUT/conditions.jsonl (resumable: finished conditions
    are kept), OUT/sweep.json (means, CIs, matched-concept NLL gaps vs plain), OUT/pareto.png."""
    from lmlab.acts.positions import store_prepend_bos
    from lmlab.io import append_jsonl, read_jsonl, write_json
    from lmlab.models import load_causal_lm

    for m in cfg.modes:
        check_mode(m, cfg.glp is not None)
    check_sigma(cfg.sigma_s)
    check_positions(cfg.positions)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    glp, store = glp_context(cfg.glp, cfg.store)
    check_direction_args(cfg.concept, cfg.vector, store.d_model)
    write_json(out / "config.json", cfg.__dict__)
    model, tok = load_causal_lm(store.model)
    d = find_direction(model, tok, store.layer, store.d_model, cfg.concept, cfg.vector, cfg.n_docs,
                       store_prepend_bos(store))
    prompts, kw = load_prompts(cfg.prompts, cfg.n_prompts), keywords(cfg.concept) if cfg.concept else None
    norm, mean = store.stats["mean_norm"], store.stats["mean"].float()
    log = out / "conditions.jsonl"
    done = {(r["mode"], r["r"]) for r in read_jsonl(log, own_log=True)} if log.is_file() else set()
    todo = [(m, r) for r in cfg.rs for m in cfg.modes if (m, r) not in done]
    for i, (m, r) in enumerate(todo):
        row = run_condition(model, tok, store.layer, prompts, d, mean, m, r * norm, glp, cfg, kw)
        append_jsonl(log, {"r": r, **row})
        if progress:
            import sys

            print(f"[{i + 1}/{len(todo)}] {m} r={r}: NLL {sum(row['nll']) / len(row['nll']):.3f} concept "
                  f"{sum(row['concept']) / len(row['concept']):.3f} retention {row['retention']:.3f} "
                  f"{row['tokens_per_s']:.1f} tok/s", file=sys.stderr)
    rows = [r for r in read_jsonl(log, own_log=True) if r["mode"] in cfg.modes and r["r"] in cfg.rs]
    summary = summarise(rows, cfg.n_boot, cfg.seed)
    summary.update(glp_info=glp and glp.info.describe(), direction=d.name, s_pos=d.s_pos, s_neg=d.s_neg,
                   mean_norm=norm, layer=store.layer, model=store.model, n_prompts=len(prompts), sigma_s=cfg.sigma_s, steps=cfg.steps)
    write_json(out / "sweep.json", summary)
    pareto_plot(summary, out / "pareto.png", title=f"steering {d.name} at layer {store.layer}")
    return summary


def _curve(rows: list[dict], key: str, idx) -> np.ndarray:  # noqa: F821
    """(n_boot, n_conditions) resampled means of a per-prompt metric."""
    import numpy as np

    return np.stack([np.asarray(r[key], dtype=np.float64)[idx].mean(1) for r in rows], axis=1)


def summarise(rows: list[dict], n_boot: int = 2000, seed: int = 0) -> dict:
    """Means with 95% bootstrap CIs over prompts per condition, and for every non-plain condition the NLL gap
    to plain steering at the SAME concept score (plain's NLL-vs-concept curve interpolated; paired resampling
    of prompts; NaN when the concept score lies outside plain's range)."""
    import numpy as np

    from lmlab.glp.stats import paired_resamples

    n = len(rows[0]["nll"])
    idx = paired_resamples(n, n_boot, seed)
    conc, nll = _curve(rows, "concept", idx), _curve(rows, "nll", idx)
    plain = [i for i, r in enumerate(rows) if r["mode"] == "plain"]
    out = []
    for i, r in enumerate(rows):
        c = {"mode": r["mode"], "r": r["r"], "retention": r["retention"], "tokens_per_s": r["tokens_per_s"],
             "samples": r["samples"]}
        for k in ("nll", "concept", "keyword", "word_frac", "judge_concept", "judge_fluency"):
            if k not in r:
                continue
            v = np.asarray(r[k], dtype=np.float64)
            if np.isnan(v).all():
                continue
            b = v[idx].mean(1)
            c[k] = {"mean": float(v.mean()), "lo": float(np.quantile(b, 0.025)), "hi": float(np.quantile(b, 0.975))}
        if r["mode"] != "plain" and len(plain) >= 2:
            gaps = []
            for j in range(n_boot):
                o = np.argsort(conc[j, plain])
                pc, pn = conc[j, plain][o], nll[j, plain][o]
                x = conc[j, i]
                gaps.append(nll[j, i] - np.interp(x, pc, pn) if pc[0] <= x <= pc[-1] else np.nan)
            g = np.asarray(gaps)
            ok = g[~np.isnan(g)]
            c["nll_gap_vs_plain"] = ({"mean": float(ok.mean()), "lo": float(np.quantile(ok, 0.025)),
                                      "hi": float(np.quantile(ok, 0.975)), "frac_in_range": float(len(ok) / n_boot)}
                                     if len(ok) > n_boot // 2 else None)
        out.append(c)
    return {"conditions": out, "n_boot": n_boot}


def pareto_plot(summary: dict, png: str | Path, title: str = "steering") -> Path:
    """Concept score (x) vs continuation NLL (y) per mode along r, with 95% CI bars on both axes."""
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=110)
    modes = list(dict.fromkeys(c["mode"] for c in summary["conditions"]))
    for m in modes:
        cs = sorted((c for c in summary["conditions"] if c["mode"] == m), key=lambda c: c["r"])
        x = [c["concept"]["mean"] for c in cs]
        y = [c["nll"]["mean"] for c in cs]
        xe = [[c["concept"]["mean"] - c["concept"]["lo"] for c in cs], [c["concept"]["hi"] - c["concept"]["mean"] for c in cs]]
        ye = [[c["nll"]["mean"] - c["nll"]["lo"] for c in cs], [c["nll"]["hi"] - c["nll"]["mean"] for c in cs]]
        ax.errorbar(x, y, xerr=xe, yerr=ye, marker="o", ms=3, capsize=2, lw=1, label=m)
        for c, xi, yi in zip(cs, x, y):
            ax.annotate(f"{c['r']:g}", (xi, yi), fontsize=6, xytext=(2, 2), textcoords="offset points")
    ax.set(xlabel="concept score (0 = negative set, 1 = positive set)", ylabel="continuation NLL, unsteered model",
           title=f"{title} (labels: r; 95% CI over prompts)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, png)


def steer_once(prompt: str, glp_dir: str | None = None, store: str | None = None, concept: str | None = None,
               vector: str | None = None, r: float = 1.0, mode: str = "sdedit", sigma_s: float = PAPER_SIGMA_S,
               steps: int = 10, max_new_tokens: int = 40, seed: int = 0, n_docs: int = 128) -> dict:
    """Unsteered and steered continuations of one prompt, with retention and the unsteered-model NLL."""
    from lmlab.acts.positions import store_prepend_bos
    from lmlab.models import load_causal_lm

    if not prompt.strip():
        raise ConfigError("empty --prompt", "give a text to continue")
    check_mode(mode, glp_dir is not None)
    check_sigma(sigma_s)
    glp, st = glp_context(glp_dir if mode != "plain" or glp_dir else None, store)
    check_direction_args(concept, vector, st.d_model)
    model, tok = load_causal_lm(st.model)
    d = find_direction(model, tok, st.layer, st.d_model, concept, vector, n_docs, store_prepend_bos(st))
    alpha = r * st.stats["mean_norm"]
    out = {"prompt": prompt, "concept": d.name, "r": r, "alpha": alpha, "mode": mode, "layer": st.layer,
           "glp_info": glp and glp.info.describe()}
    for name, fn in (("unsteered", None), (mode, Steer(d.w, alpha, mode, glp, sigma_s, steps, seed))):
        p, c, _ = generate(model, tok, [prompt], st.layer, fn, max_new_tokens)
        m = continuation_metrics(model, tok, st.layer, p, c, d, st.stats["mean"].float(), None)
        out[name] = {"text": tok.decode(c[0], skip_special_tokens=True), "nll": float(m["nll"][0]),
                     "concept": float(m["concept"][0])}
        if fn is not None and fn.log:
            out[name]["retention"] = float(torch.cat(fn.log).mean())
    return out

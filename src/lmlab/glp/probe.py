"""1-D ("sparse") probing of GLP meta-neurons vs raw residual dimensions and raw MLP neurons (Luo et al. 2026
§4b, glp.md §4b; protocol of Gurnee et al. 2023 and Kantamneni et al. 2025).

Features of every token position of a set of labelled texts, from ONE pass of the LM to layer L:
    raw   the layer-L residual (d)                                      (the paper's "raw layer output")
    mlp   the input of block L's MLP down projection (d_ff)             ("raw MLP neuron")
    meta  the input of each GLP block's down projection, concatenated (n_layers * d_mlp), from one denoiser
          call on the z-scored residual noised to sigma (seeded noise; paper sigma = 0.1, also 0.5)
    sae   with --sae: the latents of a sparse autoencoder of the same layer (n_latents; the paper's "SAE latent")
Examples are either documents (features mean-pooled over their tokens, or the last token) or single tokens.
Train/test split by document (a hash of the document index), so no document is on both sides.

Per task and feature set: keep the top_k candidates by |mean(y=1) - mean(y=0)| on train, score each with the
5-fold cross-validated AUC of a 1-D logistic regression, pick the best, report its test AUC.
A 1-D logistic regression (with or without standardisation and L2) is a monotone map of the feature whose
slope has the sign of the class-mean difference (its concave log-likelihood has gradient n1 n0 / n (m1 - m0)
at slope 0), so its AUC is exactly the AUC of sign(m1 - m0) * x: we compute that, for all candidates at
once (a test checks the identity against a fitted logistic regression). Dense L2 logistic probes on all
features are reported for reference. Mean over tasks with a 10,000-resample percentile bootstrap CI.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lmlab.errors import ConfigError, DataError

DOC_TASKS = ("domain_medical", "domain_python", "domain_general", "medical_vs_general", "sentiment")
TOKEN_TASKS = ("tok_capitalised", "tok_numeric", "tok_in_quotes", "tok_in_parens", "tok_punctuation",
               "tok_word_start", "tok_line_start")
TASKS = DOC_TASKS + TOKEN_TASKS


@dataclass
class ProbeConfig:
    glp: str = ""
    """GLP: a run directory, an official checkpoint folder or a hub id (load.resolve_glp)."""
    store: str | None = None
    """Activation store naming the model and layer (default: the GLP's)."""
    sae: str | None = None
    """SAE of the same layer (lmlab SAE run or SAELens folder): its latents are a fourth feature set."""
    tasks: list[str] | None = None
    """Built-in tasks to run (None: all of TASKS)."""
    csv: list[str] = field(default_factory=list)
    """Local CSV tasks: files with columns text,label (label 0/1); one task per file."""
    sigmas: list[float] = field(default_factory=lambda: [0.1, 0.5])
    """Noise levels of the meta-neuron pass (paper 0.1)."""
    docs_per_domain: int = 100
    """Corpus documents per domain (general, medical, python), from the train split."""
    seq_len: int = 48
    """Tokens per document (BOS included)."""
    pool: str = "mean"
    """Document features: mean over tokens, or the last token (the paper's)."""
    max_per_class: int = 400
    """Cap on examples per class and task (random, seeded)."""
    top_k: int = 512
    """Candidates kept by |class-mean difference| on train."""
    folds: int = 5
    """Cross-validation folds (by document) for choosing the neuron."""
    test_frac: float = 0.3
    """Fraction of documents held out for the test AUC."""
    dense: bool = True
    """Also fit dense L2 logistic probes on raw and meta features."""
    n_boot: int = 10_000
    """Bootstrap resamples over tasks."""
    seed: int = 0
    """Seed of subsampling and of the meta-neuron noise."""


@dataclass
class Corpus:
    """Token-level view of the probed texts after one LM pass."""

    resid: torch.Tensor
    """(N, d) layer-L residual of every non-special token."""
    mlp: torch.Tensor | None
    """(N, d_ff) input of block L's down projection (None if the block has no mlp.down_proj)."""
    doc: np.ndarray
    """(N,) document index of each row."""
    strings: list[str]
    """(N,) decoded token strings."""
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    """Per-document label arrays (n_docs,) keyed by doc task name (-1 = not in the task)."""


# ---- the LM pass --------------------------------------------------------------------------------------------
@torch.no_grad()
def collect(model, tok, layer: int, texts: list[str], seq_len: int, batch: int = 16,
            prepend_bos: bool = True) -> Corpus:
    """One pass to layer L over the texts; residual and MLP-neuron rows of every position a harvest stores
    (acts/positions.py)."""
    from lmlab.acts.hooks import check_layer, forward_to_layer
    from lmlab.acts.positions import encode_docs, keep_positions, pad_batch, pad_id

    block = check_layer(model, layer)
    down = getattr(getattr(block, "mlp", None), "down_proj", None)
    got: list[torch.Tensor] = []
    handle = down.register_forward_pre_hook(lambda m, a: got.append(a[0])) if down is not None else None
    enc = encode_docs(tok, texts, seq_len, prepend_bos)
    res, mlp, doc, ids_all = [], [], [], []
    try:
        for i in range(0, len(enc), batch):
            ids, mask = pad_batch(enc[i:i + batch], pad_id(tok))
            got.clear()
            h = forward_to_layer(model, ids, layer, attention_mask=mask).float()  # (b, T, d)
            keep = keep_positions(tok, ids, mask, prepend_bos)  # (b, T)
            res.append(h[keep])
            if got:
                mlp.append(got[0].float()[keep])
            doc.append((torch.arange(i, i + len(ids))[:, None].expand_as(ids))[keep].numpy())
            ids_all.append(ids[keep])
    finally:
        if handle is not None:
            handle.remove()
    ids = torch.cat(ids_all).tolist()
    vocab = {t: tok.decode([t]) for t in set(ids)}
    return Corpus(torch.cat(res), torch.cat(mlp) if mlp else None, np.concatenate(doc), [vocab[t] for t in ids])


@torch.no_grad()
def meta_neurons(glp, x: torch.Tensor, sigma: float, seed: int = 0, batch: int = 2048) -> torch.Tensor:
    """(N, n_layers * d_mlp): the input of every GLP block's down projection, one denoiser call at sigma on
    the z-scored x (N, d) noised with seeded eps."""
    from lmlab.glp.flow import add_noise, check_sigma

    check_sigma(sigma)
    g = torch.Generator().manual_seed(seed)
    got: list[torch.Tensor] = []
    hooks = [b.down_proj.register_forward_pre_hook(lambda m, a: got.append(a[0])) for b in glp.net.layers]
    out = []
    try:
        for i in range(0, len(x), batch):
            z = glp.encode(x[i:i + batch].float())
            eps = torch.randn(z.shape, generator=g)
            got.clear()
            glp(add_noise(z, eps, torch.tensor(sigma)), torch.full((len(z),), sigma))
            out.append(torch.cat(got, dim=1).half())  # fp16 keeps ~7k features x 30k rows in ~0.4 GB
    finally:
        for h in hooks:
            h.remove()
    return torch.cat(out)


# ---- tasks ---------------------------------------------------------------------------------------------------
@dataclass
class Task:
    name: str
    unit: str
    """"doc" (features pooled per document) or "tok" (one token's features)."""
    idx: np.ndarray
    """(n,) document indices (unit doc) or token row indices (unit tok)."""
    y: np.ndarray
    """(n,) 0/1 labels."""
    group: np.ndarray
    """(n,) document index of each example (the split and the CV folds are by document)."""


def _token_labels(strings: list[str], doc: np.ndarray) -> dict[str, np.ndarray]:
    """Token-level properties, the context ones (inside "..." / (...), line start) from preceding tokens."""
    s = strings
    lab = {"tok_capitalised": [bool(re.match(r"\s*[A-Z]", t)) for t in s],
           "tok_numeric": [any(c.isdigit() for c in t) for t in s],
           "tok_punctuation": [bool(t.strip()) and all(not c.isalnum() for c in t.strip()) for t in s],
           "tok_word_start": [t[:1] == " " and t[1:2].isalpha() for t in s]}
    quote, paren, line = [], [], []
    q = p = 0
    prev_nl = True
    for i, t in enumerate(s):
        if i == 0 or doc[i] != doc[i - 1]:
            q, p, prev_nl = 0, 0, True
        quote.append(q % 2 == 1 and '"' not in t)
        paren.append(p > 0 and "(" not in t and ")" not in t)
        line.append(prev_nl and bool(t.strip()))
        q += t.count('"')
        p = max(0, p + t.count("(") - t.count(")"))
        prev_nl = t.endswith("\n") or (prev_nl and not t.strip())
    lab.update(tok_in_quotes=quote, tok_in_parens=paren, tok_line_start=line)
    return {k: np.asarray(v, dtype=bool) for k, v in lab.items()}


def _cap(idx: np.ndarray, y: np.ndarray, group: np.ndarray, cap: int, rng) -> tuple:
    keep = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:cap] for c in (0, 1)])
    keep.sort()
    return idx[keep], y[keep], group[keep]


def build_tasks(c: Corpus, domains: np.ndarray, cfg: ProbeConfig, names: list[str]) -> list[Task]:
    """Tasks over the collected texts. domains (n_docs,): corpus domain names, or "sentiment+"/"sentiment-",
    or "csv:<file>:<label>"."""
    rng = np.random.default_rng([cfg.seed, 1])
    doc_tasks = {
        "domain_medical": (domains == "medical", np.isin(domains, ["general", "python"])),
        "domain_python": (domains == "python", np.isin(domains, ["general", "medical"])),
        "domain_general": (domains == "general", np.isin(domains, ["medical", "python"])),
        "medical_vs_general": (domains == "medical", domains == "general"),
        "sentiment": (domains == "sentiment+", domains == "sentiment-")}
    for f in cfg.csv:
        doc_tasks[f"csv:{Path(f).name}"] = (domains == f"csv:{f}:1", domains == f"csv:{f}:0")
    corpus_rows = np.isin(domains[c.doc], ["general", "medical", "python"])
    tok_labels = _token_labels(c.strings, c.doc)
    tasks = []
    for name in names:
        if name in doc_tasks:
            pos, neg = doc_tasks[name]
            idx = np.flatnonzero(pos | neg)
            tasks.append(Task(name, "doc", *_cap(idx, pos[idx].astype(int), idx, cfg.max_per_class, rng)))
        else:
            idx = np.flatnonzero(corpus_rows)
            y = tok_labels[name][idx].astype(int)
            tasks.append(Task(name, "tok", *_cap(idx, y, c.doc[idx], cfg.max_per_class, rng)))
    for t in tasks:
        if min(np.sum(t.y == 1), np.sum(t.y == 0)) < 10:
            raise DataError(f"probing task {t.name} is empty or one-sided ({int(t.y.sum())} positive, "
                            f"{int((1 - t.y).sum())} negative examples)",
                            "give more documents (--docs-per-domain) or a CSV with both labels")
    return tasks


def read_csv_task(path: str | Path) -> tuple[list[str], list[int]]:
    """A local task: CSV with header text,label (label 0 or 1)."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no CSV task file {path}", "give a CSV with columns text,label")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"text", "label"} <= set(rows[0]):
        raise DataError(f"CSV task {path} is empty or lacks the columns text,label", "add a header text,label and rows")
    try:
        labels = [int(r["label"]) for r in rows]
    except ValueError as e:
        raise DataError(f"CSV task {path}: a label is not 0/1 ({e})", "labels must be 0 or 1") from e
    if set(labels) - {0, 1}:
        raise DataError(f"CSV task {path}: labels must be 0 or 1", "fix the label column")
    if min(labels.count(0), labels.count(1)) < 5:
        raise DataError(f"probing task {path.name} is empty or one-sided ({labels.count(1)} positive, "
                        f"{labels.count(0)} negative rows)", "give at least 5 rows of each label")
    return [r["text"] for r in rows], labels


# ---- 1-D probing ---------------------------------------------------------------------------------------------
def auc_columns(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """ROC AUC of every column of x (n, F) as a score for y (n,) (Mann-Whitney, ties averaged)."""
    from scipy.stats import rankdata

    y = np.asarray(y).astype(bool)
    n1, n0 = y.sum(), (~y).sum()
    if n1 == 0 or n0 == 0:
        raise ValueError("AUC needs both classes")
    r = rankdata(x, axis=0)  # (n, F)
    return (r[y].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _fold_of(group: np.ndarray, k: int, salt: str) -> np.ndarray:
    """A stable fold in 0..k-1 per document (hash of the document index)."""
    return np.array([int(hashlib.sha1(f"{salt}:{g}".encode()).hexdigest()[:8], 16) % k for g in group])


def split_by_doc(group: np.ndarray, test_frac: float) -> np.ndarray:
    """Boolean (n,) test mask: whole documents, about test_frac of them."""
    return _fold_of(group, 1000, "test") < round(1000 * test_frac)


def one_d_probe(x_tr, y_tr, g_tr, x_te, y_te, top_k: int = 512, folds: int = 5) -> dict:
    """The paper's protocol on (n, F) features: top_k candidates by |class-mean difference| on train, each
    scored by k-fold (by document) CV AUC of a 1-D logistic regression (= AUC of sign * x, module docstring),
    best one -> its test AUC."""
    x_tr, x_te = np.asarray(x_tr, np.float64), np.asarray(x_te, np.float64)
    diff = x_tr[y_tr == 1].mean(0) - x_tr[y_tr == 0].mean(0)
    cand = np.argsort(-np.abs(diff), kind="stable")[:top_k]
    fold = _fold_of(g_tr, folds, "cv")
    cv = np.zeros(len(cand))
    used = 0
    for f in range(folds):
        va, tr = fold == f, fold != f
        if len(set(y_tr[va])) < 2 or len(set(y_tr[tr])) < 2:
            continue
        xt = x_tr[tr][:, cand]
        sign = np.sign(xt[y_tr[tr] == 1].mean(0) - xt[y_tr[tr] == 0].mean(0))
        cv += auc_columns(x_tr[va][:, cand] * sign, y_tr[va])
        used += 1
    cv /= max(used, 1)
    best = int(np.argmax(cv))
    j = int(cand[best])
    test = float(auc_columns((x_te[:, j] * np.sign(diff[j] or 1.0))[:, None], y_te)[0])
    return {"feature": j, "cv_auc": float(cv[best]), "test_auc": test}


def dense_probe(x_tr, y_tr, x_te, y_te, l2: float = 1e-2, iters: int = 100) -> float:
    """Test AUC of an L2 logistic regression on all standardised features (LBFGS)."""
    x_tr, x_te = torch.as_tensor(np.asarray(x_tr, np.float32)), torch.as_tensor(np.asarray(x_te, np.float32))
    mu, sd = x_tr.mean(0), x_tr.std(0).clamp_min(1e-6)
    a, b = (x_tr - mu) / sd, (x_te - mu) / sd
    y = torch.as_tensor(y_tr, dtype=torch.float32)
    w = torch.zeros(a.shape[1], requires_grad=True)
    c = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, c], max_iter=iters, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a @ w + c, y) + l2 * (w * w).sum() / 2
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(auc_columns((b @ w).numpy()[:, None], y_te)[0])


def task_features(t: Task, feats: torch.Tensor, doc: np.ndarray, pool: str) -> np.ndarray:
    """(n, F) features of a task's examples from token-row features feats (N, F)."""
    if t.unit == "tok":
        return feats[torch.as_tensor(t.idx)].float().numpy()
    out = np.empty((len(t.idx), feats.shape[1]), np.float32)
    starts = np.searchsorted(doc, t.idx)
    ends = np.searchsorted(doc, t.idx, side="right")
    for i, (s, e) in enumerate(zip(starts, ends)):
        rows = feats[s:e] if pool == "mean" else feats[e - 1:e]
        out[i] = rows.float().mean(0).numpy()
    return out


def probe_task(t: Task, sets: dict[str, torch.Tensor], doc: np.ndarray, cfg: ProbeConfig) -> dict:
    """1-D (and dense) test AUCs of one task for every feature set."""
    test = split_by_doc(t.group, cfg.test_frac)
    if len(set(t.y[test])) < 2 or len(set(t.y[~test])) < 2:
        raise DataError(f"probing task {t.name} has a one-class train or test split", "give more examples")
    res = {"name": t.name, "unit": t.unit, "n_train": int((~test).sum()), "n_test": int(test.sum()),
           "pos_rate": float(t.y.mean())}
    for name, feats in sets.items():
        x = task_features(t, feats, doc, cfg.pool)
        r = one_d_probe(x[~test], t.y[~test], t.group[~test], x[test], t.y[test], cfg.top_k, cfg.folds)
        if cfg.dense and not name.startswith("mlp"):
            r["dense_test_auc"] = dense_probe(x[~test], t.y[~test], x[test], t.y[test])
        res[name] = r
    return res


# ---- the command ---------------------------------------------------------------------------------------------
def _texts(cfg: ProbeConfig, names: list[str]) -> tuple[list[str], np.ndarray]:
    """Texts to run through the LM and their domain tags (see build_tasks)."""
    from lmlab.data.corpus import iter_documents
    from lmlab.glp.steering.directions import concept_texts

    texts, tags = [], []
    if any(n != "sentiment" for n in names):
        for dom in ("general", "medical", "python"):
            docs = [d.text for _, d in zip(range(cfg.docs_per_domain), iter_documents("embedded", "train", [dom]))]
            texts += docs
            tags += [dom] * len(docs)
    if "sentiment" in names:
        pos, neg = concept_texts("sentiment")
        texts += pos + neg
        tags += ["sentiment+"] * len(pos) + ["sentiment-"] * len(neg)
    for f in cfg.csv:
        t, y = read_csv_task(f)
        texts += t
        tags += [f"csv:{f}:{v}" for v in y]
    return texts, np.asarray(tags)


def check_config(cfg: ProbeConfig) -> list[str]:
    names = list(TASKS) if cfg.tasks is None else list(cfg.tasks)
    if bad := [n for n in names if n not in TASKS]:
        raise ConfigError(f"unknown probing task(s) {', '.join(bad)}", f"choose from {', '.join(TASKS)}")
    if not names and not cfg.csv:
        raise ConfigError("no probing task selected", "give --tasks and/or --csv")
    if cfg.pool not in ("mean", "last"):
        raise ConfigError(f"pool={cfg.pool!r}", "use mean or last")
    for s in cfg.sigmas:
        from lmlab.glp.flow import check_sigma

        check_sigma(s)
    return names + [f"csv:{Path(f).name}" for f in cfg.csv]


def probe(cfg: ProbeConfig, progress: bool = True) -> dict:
    """Per-task and mean (bootstrap CI over tasks) test AUCs of meta (per sigma), raw and mlp features."""
    import sys

    from lmlab.acts.positions import store_prepend_bos
    from lmlab.glp.load import glp_context
    from lmlab.models import load_causal_lm

    names = check_config(cfg)
    for f in cfg.csv:
        read_csv_task(f)  # bad CSV tasks fail before the model loads
    glp, store = glp_context(cfg.glp or None, cfg.store)
    if glp is None:
        raise ConfigError("probing needs a GLP", "pass --glp SPEC (a run directory, an official folder or a hub id)")
    sae = _probe_sae(cfg.sae, store)  # before the LM loads: a wrong SAE fails fast
    model, tok = load_causal_lm(store.model)
    texts, tags = _texts(cfg, names)
    c = collect(model, tok, store.layer, texts, cfg.seq_len, prepend_bos=store_prepend_bos(store))
    tasks = build_tasks(c, tags, cfg, names)
    sets = {f"meta@{s:g}": meta_neurons(glp, c.resid, s, cfg.seed) for s in cfg.sigmas}
    sets["raw"] = c.resid
    if c.mlp is not None:
        sets["mlp"] = c.mlp
    if sae is not None:
        with torch.no_grad():
            sets["sae"] = torch.cat([sae.encode(c.resid[i:i + 4096].float()) for i in range(0, len(c.resid), 4096)])
    per_task = []
    for i, t in enumerate(tasks):
        per_task.append(probe_task(t, sets, c.doc, cfg))
        if progress:
            print(f"[{i + 1}/{len(tasks)}] {t.name}: " + " ".join(
                f"{k} {per_task[-1][k]['test_auc']:.3f}" for k in sets), file=sys.stderr)
    return {"glp_info": glp.info.describe(), "model": store.model, "layer": store.layer, "glp": cfg.glp,
            "sae": cfg.sae, "n_rows": len(c.resid), "tasks": per_task, "mean": aggregate(per_task, list(sets), cfg.n_boot, cfg.seed)}


def _probe_sae(path, store):
    """The SAE whose latents are probed (None without one), checked against the store's width."""
    if path is None:
        return None
    from lmlab.sae.saelens import load_sae

    sae = load_sae(path)
    if sae.cfg.d_in != store.d_model:
        raise DataError(f"the SAE reads d={sae.cfg.d_in} activations, the GLP's store holds d={store.d_model}",
                        "pass an SAE trained on the same model and layer as the GLP")
    return sae


def aggregate(per_task: list[dict], sets: list[str], n_boot: int = 10_000, seed: int = 0) -> dict:
    """Mean test AUC over tasks per feature set (1-D and dense) with percentile bootstrap CIs, and the paired
    difference of each meta set against raw and mlp."""
    from lmlab.glp.stats import mean_ci

    out = {}
    for s in sets:
        out[s] = mean_ci([t[s]["test_auc"] for t in per_task], n_boot, seed=seed)
        if all("dense_test_auc" in t[s] for t in per_task):
            out[f"{s} (dense)"] = mean_ci([t[s]["dense_test_auc"] for t in per_task], n_boot, seed=seed)
    for s in (x for x in sets if x.startswith("meta")):
        for base in ("raw", "mlp", "sae"):
            if base in sets:
                out[f"{s} - {base}"] = mean_ci([t[s]["test_auc"] - t[base]["test_auc"] for t in per_task], n_boot,
                                               seed=seed)
    return out


def probe_plot(result: dict, png: str | Path, title: str = "1-D probing") -> Path:
    """Mean 1-D test AUC per feature set with 95% bootstrap CIs, and per-task AUCs as dots."""
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    m = result["mean"]
    sets = [k for k in m if " " not in k]
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for i, s in enumerate(sets):
        ax.errorbar([i], [m[s]["mean"]], yerr=[[m[s]["mean"] - m[s]["lo"]], [m[s]["hi"] - m[s]["mean"]]],
                    fmt="o", capsize=4, color="C0")
        ax.scatter(i + np.linspace(-0.15, 0.15, len(result["tasks"])), [t[s]["test_auc"] for t in result["tasks"]],
                   s=6, color="0.6")
    ax.set_xticks(range(len(sets)), sets)
    ax.set(ylabel="test AUC (best single feature)", title=f"{title} ({len(result['tasks'])} tasks; 95% CI)")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    return save_png(fig, png)


# ---- across GLP checkpoints: mean 1-D AUC vs held-out diffusion loss -------------------------------------------
def glp_heldout_loss(glp, store, eval_rows: int = 4096) -> float:
    """The trainer's held-out diffusion loss (fixed held-out rows, noise and sigmas) for any GLP on its store."""
    from lmlab.acts.store import split_rows
    from lmlab.glp.train import GLPTrainConfig, heldout_loss, heldout_set

    _, held = split_rows(store)
    return heldout_loss(glp, heldout_set(store, held, GLPTrainConfig(eval_rows=eval_rows), glp, torch.device("cpu")))


def probe_family(glps: dict[str, object], cfg: ProbeConfig, sigma: float = 0.1, progress: bool = True) -> list[dict]:
    """One LM pass and one task set; per GLP (label -> GLP on the same store): held-out loss and mean 1-D
    test AUC of its meta-neurons at sigma (bootstrap CI over tasks), raw beside it."""
    import sys

    from lmlab.acts.positions import store_prepend_bos
    from lmlab.acts.store import ActivationStore
    from lmlab.glp.stats import mean_ci
    from lmlab.models import load_causal_lm

    names = check_config(cfg)
    store = ActivationStore.open(cfg.store)
    model, tok = load_causal_lm(store.model)
    texts, tags = _texts(cfg, names)
    c = collect(model, tok, store.layer, texts, cfg.seq_len, prepend_bos=store_prepend_bos(store))
    tasks = build_tasks(c, tags, cfg, names)
    nodense = ProbeConfig(**{**cfg.__dict__, "dense": False})
    raw = [probe_task(t, {"raw": c.resid}, c.doc, nodense)["raw"]["test_auc"] for t in tasks]
    rows = []
    for label, glp in glps.items():
        feats = {"meta": meta_neurons(glp, c.resid, sigma, cfg.seed)}
        aucs = [probe_task(t, feats, c.doc, nodense)["meta"]["test_auc"] for t in tasks]
        rows.append({"glp": label, "heldout_loss": glp_heldout_loss(glp, store), "sigma": sigma,
                     "meta": mean_ci(aucs, cfg.n_boot, seed=cfg.seed), "raw": mean_ci(raw, cfg.n_boot, seed=cfg.seed),
                     "per_task": dict(zip([t.name for t in tasks], aucs))})
        if progress:
            print(f"{label}: loss {rows[-1]['heldout_loss']:.3f} mean 1-D AUC {rows[-1]['meta']['mean']:.3f}",
                  file=sys.stderr)
    return rows


def family_plot(rows: list[dict], png: str | Path) -> Path:
    """Mean 1-D meta-neuron AUC (95% CI over tasks) vs GLP held-out loss; raw residual as a line."""
    from lmlab.report.plots import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.0, 4.0), dpi=110)
    x = [r["heldout_loss"] for r in rows]
    y = [r["meta"]["mean"] for r in rows]
    err = [[r["meta"]["mean"] - r["meta"]["lo"] for r in rows], [r["meta"]["hi"] - r["meta"]["mean"] for r in rows]]
    ax.errorbar(x, y, yerr=err, fmt="o-", capsize=3, label=f"GLP meta-neurons (sigma {rows[0]['sigma']:g})")
    for r, xi, yi in zip(rows, x, y):
        ax.annotate(r["glp"], (xi, yi), fontsize=7, xytext=(3, 3), textcoords="offset points")
    raw = rows[0]["raw"]
    ax.axhspan(raw["lo"], raw["hi"], color="0.85", label="raw residual dims (95% CI)")
    ax.axhline(raw["mean"], color="0.5", lw=1)
    ax.set(xlabel="GLP held-out diffusion loss", ylabel="mean 1-D test AUC over tasks",
           title="1-D probing vs GLP quality")
    ax.invert_xaxis()
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_png(fig, png)

"""The distilled token classifier's probe (Rathi & Radford 2026 §5.2; reference §2.4–2.5): an L2-regularised
logistic regression on frozen features, fitted full-batch with L-BFGS on class-balanced data (the majority class
subsampled, as the released code does), its regularisation chosen on validation data, and the decision threshold
that maximises F1 on held-out data (`f1_threshold`, the paper's rule; `precision_recall_curve` + argmax F1).

Features are standardised with the training set's mean and SD, and the saved probe folds that in, so it is a
plain (w, b) on raw features: p = sigmoid(x @ w + b).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch


class Probe(NamedTuple):
    w: torch.Tensor
    """(F,) weights on raw features."""
    b: float

    def prob(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(x.float() @ self.w + self.b)


def balance(y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced subset: every minority example and as many random majority ones."""
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    n = min(len(pos), len(neg))
    return np.sort(np.concatenate([rng.choice(pos, n, replace=False), rng.choice(neg, n, replace=False)]))


def fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float, iters: int = 200) -> Probe:
    """Mean log-loss + l2/2 |w|^2 on standardised features, L-BFGS (strong Wolfe); returns the raw-space probe."""
    x = x.double()
    mu, sd = x.mean(0), x.std(0).clamp_min(1e-8)
    z, yt = (x - mu) / sd, y.double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=iters, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, yt) + 0.5 * l2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    w_raw = (w / sd).detach()
    return Probe(w_raw.float(), float(b.detach() - (w_raw * mu).sum()))


def f1_threshold(p: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(threshold, F1) maximising F1 when `p >= threshold` predicts positive (every distinct p tried)."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order].astype(np.int64)
    tp = np.cumsum(ys)
    k = np.arange(1, len(ys) + 1)
    last = np.r_[ps[1:] != ps[:-1], True]  # cut only between distinct scores
    f1 = np.where(last, 2 * tp / (k + ys.sum()), -1.0)
    i = int(np.argmax(f1))
    return float(ps[i]), float(f1[i])


def metrics(p: np.ndarray, y: np.ndarray, threshold: float) -> dict:
    """F1, precision, recall, AUROC and the positive rate of `p >= threshold` against labels y (0/1)."""
    from lmlab.sae.label import auc

    pred = p >= threshold
    tp = int((pred & (y == 1)).sum())
    prec, rec = tp / max(1, int(pred.sum())), tp / max(1, int((y == 1).sum()))
    return {"f1": 2 * prec * rec / max(prec + rec, 1e-12), "precision": prec, "recall": rec,
            "auroc": float(auc(p[y == 1, None], p[y == 0, None])[0]), "positive_rate": float(pred.mean()),
            "n": int(len(y)), "n_positive": int((y == 1).sum())}


def doc_resamples(group: np.ndarray, n_boot: int = 500, seed: int = 0):
    """Yield n_boot token-index resamples that draw whole documents (`group`, one id per token) with replacement:
    tokens of one document are not independent."""
    rng = np.random.default_rng(seed)
    ids, inv = np.unique(group, return_inverse=True)
    members = [np.flatnonzero(inv == k) for k in range(len(ids))]
    for _ in range(n_boot):
        yield np.concatenate([members[k] for k in rng.integers(0, len(ids), len(ids))])


def metrics_ci(p: np.ndarray, y: np.ndarray, group: np.ndarray, threshold: float, n_boot: int = 500,
               seed: int = 0) -> dict:
    """95% percentile intervals of F1, precision, recall and AUROC at a fixed threshold (document bootstrap)."""
    draws = {k: [] for k in ("f1", "precision", "recall", "auroc")}
    for idx in doc_resamples(group, n_boot, seed):
        if 0 < y[idx].sum() < len(idx):
            m = metrics(p[idx], y[idx], threshold)
            for k in draws:
                draws[k].append(m[k])
    return {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] for k, v in draws.items() if v}


def paired_diff(p_a: np.ndarray, thr_a: float, p_b: np.ndarray, thr_b: float, y: np.ndarray, group: np.ndarray,
                n_boot: int = 500, seed: int = 0) -> dict:
    """{f1, auroc: {diff, ci95}}: classifier a minus classifier b on the same tokens, each at its own threshold,
    with 95% intervals from the same document resamples for both (paired: shared document difficulty cancels)."""
    ma, mb = metrics(p_a, y, thr_a), metrics(p_b, y, thr_b)
    draws = {"f1": [], "auroc": []}
    for idx in doc_resamples(group, n_boot, seed):
        if 0 < y[idx].sum() < len(idx):
            a, b = metrics(p_a[idx], y[idx], thr_a), metrics(p_b[idx], y[idx], thr_b)
            for k in draws:
                draws[k].append(a[k] - b[k])
    # a test split with one class only (a tiny demo corpus) has no valid resample: the interval is undefined
    return {k: {"diff": ma[k] - mb[k],
                "ci95": [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))] if v else None}
            for k, v in draws.items()}


def train_probe(x_tr, y_tr, x_va, y_va, l2s=(1e-3, 1e-2, 1e-1), seed: int = 0) -> tuple[Probe, dict]:
    """Fit on a class-balanced subset of the training data for each l2, keep the one with the best validation
    log-loss (on balanced validation data), and set the F1-optimal threshold on the (unbalanced) validation
    data. Returns (probe, {l2, threshold, val metrics, per-l2 validation losses})."""
    tr, va = balance(y_tr, seed), balance(y_va, seed + 1)
    losses, probes = {}, {}
    for l2 in l2s:
        pr = fit_logistic(x_tr[tr], torch.as_tensor(y_tr[tr]), l2)
        p = pr.prob(x_va[va]).double().clamp(1e-7, 1 - 1e-7)
        yv = torch.as_tensor(y_va[va]).double()
        losses[l2] = float(-(yv * p.log() + (1 - yv) * (1 - p).log()).mean())
        probes[l2] = pr
    best = min(losses, key=losses.get)
    p_va = probes[best].prob(x_va).numpy()
    thr, _ = f1_threshold(p_va, y_va)
    return probes[best], {"l2": best, "threshold": thr, "val": metrics(p_va, y_va, thr),
                          "val_logloss_by_l2": {str(k): v for k, v in losses.items()}}

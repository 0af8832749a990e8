"""Batched L-BFGS: minimise S independent smooth problems at once (numpy, vectorised over S).

The Chinchilla/Epoch method runs L-BFGS from a grid of 4,500 starts and bootstraps the fit 1,000s of times;
one scipy call per start costs tens of ms in Python overhead. Here every start (and every bootstrap resample)
is one row of a (S, p) matrix and each iteration is a handful of numpy ops over all rows: the two-loop
recursion (Nocedal & Wright 2006, Alg. 7.4) with per-row memory, and a per-row backtracking Armijo line search.
Pairs with non-positive curvature s·y are skipped (keeps the inverse-Hessian estimate positive definite).
A row stops when its relative decrease (f_k − f_{k+1}) / max(|f_k|, |f_{k+1}|, 1) <= ftol (scipy's factr rule),
when max|g| <= gtol, or when the line search cannot decrease f.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("sp,sp->s", a, b)


def _direction(g, sh, yh, rho, gamma, order):
    """Two-loop recursion for d = −H g, rows independent. g (S, p); sh, yh (m, S, p); rho (m, S)."""
    q = g.copy()
    alphas = []
    for j in order:  # newest to oldest
        a = rho[j] * _dot(sh[j], q)
        q -= a[:, None] * yh[j]
        alphas.append(a)
    r = q * gamma[:, None]
    for j, a in zip(reversed(order), reversed(alphas)):
        b = rho[j] * _dot(yh[j], r)
        r += sh[j] * (a - b)[:, None]
    return -r


def _line_search(fg, X, F, d, gd, rows, max_ls=40):
    """Backtracking Armijo (c1 = 1e-4) per row. Returns (accepted mask, X_new, F_new, G_new)."""
    n = len(rows)
    t = np.ones(n)
    Xn, Fn, Gn = X.copy(), F.copy(), np.zeros_like(X)
    pending = np.ones(n, bool)
    for _ in range(max_ls):
        i = np.flatnonzero(pending)
        Xt = X[i] + t[i, None] * d[i]
        Ft, Gt = fg(Xt, rows[i])
        ok = np.isfinite(Ft) & (Ft <= F[i] + 1e-4 * t[i] * gd[i])
        Xn[i[ok]], Fn[i[ok]], Gn[i[ok]] = Xt[ok], Ft[ok], Gt[ok]
        pending[i[ok]] = False
        t[i[~ok]] *= 0.5
        if not pending.any():
            break
    return ~pending, Xn, Fn, Gn


def batched_lbfgs(fg: Callable, X0: np.ndarray, max_iter: int = 1000, m: int = 10, ftol: float = 1e-13,
                  gtol: float = 1e-10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimise rows of X0 (S, p). fg(X (k, p), rows (k,)) -> (F (k,), G (k, p)) for those rows.
    Returns (X, F, iterations per row)."""
    X = np.array(X0, dtype=np.float64)
    S, p = X.shape
    F, G = fg(X, np.arange(S))
    F = np.where(np.isfinite(F), F, np.inf)
    active = np.isfinite(F)
    sh, yh, rho = np.zeros((m, S, p)), np.zeros((m, S, p)), np.zeros((m, S))
    gamma = 1.0 / np.maximum(1.0, np.abs(G).max(1))  # first step: unit-ish length (scipy's initial scaling)
    iters = np.zeros(S, int)
    for it in range(max_iter):
        A = np.flatnonzero(active)
        if A.size == 0:
            break
        order = [(it - 1 - j) % m for j in range(min(it, m))]
        d = _direction(G[A], sh[:, A], yh[:, A], rho[:, A], gamma[A], order)
        gd = _dot(G[A], d)
        bad = ~(gd < 0)  # not a descent direction: restart from steepest descent
        d[bad] = -G[A][bad] * gamma[A][bad, None]
        gd[bad] = _dot(G[A][bad], d[bad])
        ok, Xn, Fn, Gn = _line_search(fg, X[A], F[A], d, gd, A)
        s, y = Xn - X[A], Gn - G[A]
        sy = _dot(s, y)
        store = ok & (sy > 1e-12 * np.sqrt(_dot(s, s) * _dot(y, y)) + 1e-300)
        slot = it % m
        sh[slot, A], yh[slot, A] = s, y
        rho[slot, A] = np.where(store, 1.0 / np.where(store, sy, 1.0), 0.0)
        gamma[A] = np.where(store, sy / np.maximum(_dot(y, y), 1e-300), gamma[A])
        rel = (F[A] - Fn) / np.maximum(np.maximum(np.abs(F[A]), np.abs(Fn)), 1.0)
        X[A], F[A], G[A] = np.where(ok[:, None], Xn, X[A]), np.where(ok, Fn, F[A]), np.where(ok[:, None], Gn, G[A])
        iters[A] += ok
        active[A] = ok & (rel > ftol) & (np.abs(G[A]).max(1) > gtol)
    return X, F, iters

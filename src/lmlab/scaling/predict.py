"""Predictions from fitted laws: GPT-4-style extrapolation (OpenAI 2023 §3.1), compute-optimal allocation
(Hoffmann et al. 2022 eq. 4 closed form), Kaplan's critical batch size, and compute slowdown of one series
against a baseline fit (the token-filtering measurement: how much compute the baseline needs to match a loss).
"""

from __future__ import annotations

import numpy as np

from lmlab.errors import DataError
from lmlab.scaling.fit import FitResult, fit


def frontier(c: np.ndarray, loss: np.ndarray) -> np.ndarray:
    """Indices of the compute-efficient frontier: points with lower loss than every point of smaller C
    (Kaplan et al. 2020 §6's L(C_min) envelope over runs and checkpoints), in increasing C."""
    order = np.argsort(c, kind="stable")
    keep, best = [], np.inf
    for i in order:
        if loss[i] < best:
            keep.append(i)
            best = loss[i]
    return np.array(keep, dtype=int)


def predict_extrapolation(c: np.ndarray, loss: np.ndarray, fit_max_compute: float, targets, law: str = "gpt4-c",
                          use_frontier: bool = False, bootstrap: int = 200, seed: int = 0, groups=None,
                          actual: dict[float, float] | None = None, allow_partial_bootstrap: bool = False) -> dict:
    """Fit `law` only on points with C <= fit_max_compute, predict the loss at each target C with a 95%
    bootstrap interval; where `actual` (target C -> observed loss) is given, report the relative error."""
    c, loss = np.asarray(c, float), np.asarray(loss, float)
    sel = np.flatnonzero(c <= fit_max_compute)
    if use_frontier:
        sel = sel[frontier(c[sel], loss[sel])]
    g = None if groups is None else np.asarray(groups)[sel]
    res = fit(law, C=c[sel], loss=loss[sel], bootstrap=bootstrap, seed=seed, groups=g,
              allow_partial_bootstrap=allow_partial_bootstrap)
    t = np.atleast_1d(np.asarray(targets, float))
    point, lo, hi = res.predict_ci(C=t)
    preds = []
    for i, ct in enumerate(t):
        ci = [float(lo[i]), float(hi[i])] if res.boot else None  # no interval: the fit's ci_note says why
        row = {"C": float(ct), "predicted": float(point[i]), "ci": ci, "compute_ratio": float(ct / c[sel].max())}
        if actual and float(ct) in actual:
            a = actual[float(ct)]
            row.update(actual=a, rel_error=float((point[i] - a) / a),
                       in_ci=bool(lo[i] <= a <= hi[i]) if ci else None)
        preds.append(row)
    return {"fit": res.to_json(), "fit_max_compute": float(fit_max_compute), "fit_points": len(sel),
            "frontier": use_frontier, "predictions": preds, "_fit": res}


def compute_optimal(params: dict, c) -> tuple[np.ndarray, np.ndarray]:
    """N_opt(C), D_opt(C) minimising E + A/N^α + B/D^β subject to C = 6 N D (Hoffmann et al. 2022 eq. 4):
    N_opt = G (C/6)^(β/(α+β)), D_opt = G^-1 (C/6)^(α/(α+β)), G = (αA / (βB))^(1/(α+β))."""
    a, b, A, B = (np.float64(params[k]) for k in ("alpha", "beta", "A", "B"))
    c = np.asarray(c, float)
    with np.errstate(all="ignore"):  # degenerate bootstrap fits (an exponent or coefficient at 0) give nan/inf
        G = (a * A / (b * B)) ** (1 / (a + b))
        return G * (c / 6) ** (b / (a + b)), (c / 6) ** (a / (a + b)) / G


def allocation(res: FitResult, c) -> list[dict]:
    """Compute-optimal N, D, tokens/param and loss at each budget, with bootstrap intervals when available."""
    out = []
    for ct in np.atleast_1d(np.asarray(c, float)):
        n, d = compute_optimal(res.params, ct)
        row = {"C": float(ct), "N_opt": float(n), "D_opt": float(d), "tokens_per_param": float(d / n),
               "loss": float(res.predict(N=n, D=d))}
        if res.boot:
            nd = np.array([compute_optimal(p, ct) for p in res.boot])  # (n_boot, 2)
            nd[~np.isfinite(nd)] = np.nan
            for j, k in enumerate(("N_opt", "D_opt")):
                row[f"{k}_ci"] = [float(np.nanquantile(nd[:, j], 0.025)), float(np.nanquantile(nd[:, j], 0.975))]
            tpp = nd[:, 1] / nd[:, 0]
            row["tokens_per_param_ci"] = [float(np.nanquantile(tpp, 0.025)), float(np.nanquantile(tpp, 0.975))]
            row["n_bootstrap_degenerate"] = int(np.isnan(tpp).sum())
        out.append(row)
    return out


def critical_batch(loss, b_star: float = 2e8, alpha_b: float = 0.21) -> np.ndarray:
    """Kaplan et al. 2020 eq. 5.4 (after McCandlish et al. 2018): B_crit(L) = B_* / L^(1/α_B) tokens; the
    batch size above which more data parallelism saves steps but no longer compute."""
    loss = np.asarray(loss, float)
    if np.any(loss <= 0) or not np.all(np.isfinite(loss)):
        raise DataError("critical batch size needs finite loss > 0", "pass a loss in nats/token")
    return b_star / loss ** (1 / alpha_b)


def _inverse_c(law: str, params: dict, loss: np.ndarray) -> np.ndarray:
    """C at which the baseline law reaches `loss` (nan where it never does, e.g. L <= E)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if law == "kaplan-c":
            return params["C_c"] * loss ** (-1 / params["alpha_C"])
        if law == "gpt4-c":
            gap = loss - params["E"]
            return np.where(gap > 0, (params["A"] / gap) ** (1 / params["alpha"]), np.nan)
    raise DataError(f"slowdown supports the laws kaplan-c and gpt4-c, not {law}", "use --law kaplan-c")


def slowdown(base_c, base_loss, c, loss, c_processed=None, law: str = "kaplan-c", bootstrap: int = 200,
             seed: int = 0, groups=None, allow_partial_bootstrap: bool = False) -> dict:
    """Fit the baseline L(C); for each point of the other series, the baseline compute C_match reaching the
    same loss and the ratio C / C_match (>1: the series needed more compute than the baseline = a slowdown),
    with bootstrap intervals over the baseline fit; also against actually-processed compute if given."""
    res = fit(law, C=base_c, loss=base_loss, bootstrap=bootstrap, seed=seed, groups=groups,
              allow_partial_bootstrap=allow_partial_bootstrap)
    c, loss = np.asarray(c, float), np.asarray(loss, float)
    match = _inverse_c(law, res.params, loss)
    boot = np.array([_inverse_c(law, p, loss) for p in res.boot]) if res.boot else None
    series = {"nominal": c} | ({"processed": np.asarray(c_processed, float)} if c_processed is not None else {})
    points = []
    for i in range(len(c)):
        row = {"C": float(c[i]), "loss": float(loss[i]), "C_baseline": float(match[i])}
        for name, cc in series.items():
            row[f"slowdown_{name}"] = float(cc[i] / match[i])
            if boot is not None:
                r = cc[i] / boot[:, i]
                row[f"slowdown_{name}_ci"] = [float(np.nanquantile(r, 0.025)), float(np.nanquantile(r, 0.975))]
        points.append(row)
    return {"baseline_fit": res.to_json(), "points": points}

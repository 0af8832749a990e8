"""Fit scaling laws: Huber on log residuals with multi-start L-BFGS (Hoffmann et al. 2022 App. D.2, as
corrected by Besiroglu et al. 2024), a variable-projection variant (VPNLS, Czech et al. 2026), and bootstrap
confidence intervals on every parameter and every prediction.

Objective (Epoch's correction): sum_i Huber_δ(log L̂_i − log L_i) with δ = 1e-3, *summed* over points, never
averaged — averaging shrinks the objective ~n times and L-BFGS stops early at default tolerances. We also
tighten the tolerances and report how many starts reached the best objective (a convergence check).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lmlab.errors import DataError
from lmlab.scaling.laws import Law, get_law

HUBER_DELTA = 1e-3
MIN_BOOT_KEPT = 0.8
"""An interval needs at least this fraction of the requested resamples to fit: the ones that fail are not a
random subset (they are the resamples the law fits worst), so an interval from the survivors is biased."""
MIN_BOOT_GROUPS = 5
"""Fewest runs (groups) a bootstrap over runs uses: 5 runs give 126 distinct resamples and a 0.16% chance that a
resample is one run repeated; with 1 run every resample is that run (a zero-width interval). Below this the
bootstrap resamples points instead, with a caveat in `ci_note`."""


@dataclass
class FitResult:
    """A fitted law: public params, 95% bootstrap intervals, R² (in loss space) and diagnostics."""

    law: str
    params: dict[str, float]
    ci: dict[str, list[float]]
    r2: float
    n_points: int
    method: str
    objective: float
    """Final objective (summed Huber for 'huber', sum of squares in loss space for 'varpro')."""
    n_starts: int
    converged_starts: int
    """Starts whose final objective is within 1e-6 (relative) of the best: agreement across starts."""
    x0: dict[str, float]
    """Centring constants ln X0 (internal; kept so θ can be reproduced)."""
    boot: list[dict[str, float]] = field(default_factory=list, repr=False)
    """Bootstrap parameter sets behind the intervals (for prediction intervals); empty when no interval is
    given (no bootstrap, or one withheld: see ci_note); not in the JSON."""
    n_bootstrap_requested: int = 0
    n_bootstrap_kept: int = 0
    """Resamples whose refit succeeded (the rest had too few distinct points or diverged)."""
    bootstrap_unit: str | None = None
    """'runs' (whole groups resampled) or 'points'; None without bootstrap."""
    n_groups: int | None = None
    ci_note: str | None = None
    """Why there is no interval, or the caveat the interval carries; None when there is nothing to say."""

    def to_json(self) -> dict:
        return {"law": self.law, "formula": get_law(self.law).formula, "params": self.params, "ci": self.ci,
                "r2": self.r2, "n_points": self.n_points, "method": self.method, "objective": self.objective,
                "n_starts": self.n_starts, "converged_starts": self.converged_starts,
                "n_bootstrap_requested": self.n_bootstrap_requested, "n_bootstrap_kept": self.n_bootstrap_kept,
                "bootstrap_unit": self.bootstrap_unit, "n_groups": self.n_groups, "ci_note": self.ci_note}

    def predict(self, **inputs) -> np.ndarray:
        return get_law(self.law).predict(self.params, **inputs)

    def predict_ci(self, level: float = 0.95, **inputs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(point, lo, hi) at the inputs; the interval is the bootstrap percentile interval (needs bootstrap)."""
        law = get_law(self.law)
        point = law.predict(self.params, **inputs)
        if not self.boot:
            return point, np.full_like(point, np.nan), np.full_like(point, np.nan)
        preds = np.stack([law.predict(p, **inputs) for p in self.boot])  # (n_boot, n)
        q = (1 - level) / 2
        return point, np.quantile(preds, q, axis=0), np.quantile(preds, 1 - q, axis=0)


# ---- input checks --------------------------------------------------------------------------------------
def check_inputs(law: Law, loss, **inputs) -> dict[str, np.ndarray]:
    """Validate: every input the law needs present, same length, finite, > 0; enough points for the params."""
    arrays = {}
    for name in (*law.inputs, "loss"):
        v = loss if name == "loss" else inputs.get(name)
        if v is None:
            raise DataError(f"law {law.name} needs column {name}", f"provide {name} (or derive it: C = 6 N D)")
        a = np.asarray(v, dtype=np.float64).ravel()
        if not np.all(np.isfinite(a)):
            raise DataError(f"{name} has {int((~np.isfinite(a)).sum())} NaN/inf value(s)", "drop or fix those rows")
        if np.any(a <= 0):
            raise DataError(f"{name} has {int((a <= 0).sum())} non-positive value(s)",
                            "scaling laws need N, D, C, loss > 0: drop those rows")
        arrays[name] = a
    n = {len(a) for a in arrays.values()}
    if len(n) != 1:
        raise DataError("input columns have different lengths", "pass arrays of equal length")
    if n.pop() <= len(law.params):
        raise DataError(f"{len(arrays['loss'])} point(s) for law {law.name} with {len(law.params)} parameters",
                        f"give at least {len(law.params) + 1} points")
    return arrays


# ---- Huber multi-start L-BFGS ---------------------------------------------------------------------------
def huber_objective(law: Law, x: dict, logy: np.ndarray, weights: np.ndarray, delta: float = HUBER_DELTA):
    """fg(Θ (k, p), rows (k,)) -> (F (k,), G (k, p)): F = Σ_i w_i Huber_δ(f(θ, x_i) − log y_i), summed (Epoch),
    G = J^T (w · clip(r, −δ, δ)). `weights` is (n,) or (S, n) (one row per problem: bootstrap multiplicities)."""

    def fg(TH, rows):
        with np.errstate(over="ignore", invalid="ignore"):
            f, jac = law.value_jac(TH.T[:, :, None], x)  # θ components (k, 1) broadcast with x (n,): f (k, n)
            r = f - logy
            w = weights if weights.ndim == 1 else weights[rows]
            a = np.abs(r)
            h = np.where(a <= delta, 0.5 * r * r, delta * (a - 0.5 * delta))
            F = (w * h).sum(1)
            G = np.einsum("kn,knp->kp", w * np.clip(r, -delta, delta), jac)  # jac (k, n, p)
        bad = ~np.isfinite(F) | ~np.isfinite(G).all(1)
        F[bad], G[bad] = np.inf, 0.0
        return F, G

    return fg


def _centre(law: Law, arrays: dict) -> tuple[dict, dict, np.ndarray]:
    x0 = {k: float(np.log(arrays[k]).mean()) for k in law.inputs}
    x = {k: np.log(arrays[k]) - x0[k] for k in law.inputs}
    return x, x0, np.log(arrays["loss"])


def _select_starts(fg, grid: np.ndarray, starts: int | str) -> np.ndarray:
    """The whole grid ("all": the Epoch method) or the `starts` grid points with the lowest initial objective."""
    if starts == "all" or int(starts) >= len(grid):
        return grid
    v = fg(grid, np.zeros(len(grid), int))[0]
    return grid[np.argsort(v, kind="stable")[: int(starts)]]


def fit_huber(law: Law, arrays: dict, starts: int | str = "all", delta: float = HUBER_DELTA):
    """(θ, x0, objective, n_starts, converged, starts used) of the multi-start Huber fit on validated arrays."""
    from lmlab.scaling.optim import batched_lbfgs

    x, x0, logy = _centre(law, arrays)
    fg = huber_objective(law, x, logy, np.ones_like(logy), delta)
    s = _select_starts(fg, law.starts(x0), starts)
    X, F, _ = batched_lbfgs(fg, s)
    k = int(np.argmin(F))  # first best start on ties: deterministic
    conv = int(np.sum(F[k] + 1e-6 * max(abs(F[k]), 1e-12) >= F))
    return X[k], x0, float(F[k]), len(s), conv, s


# ---- variable projection (VPNLS) -----------------------------------------------------------------------
_VARPRO = {"chinchilla": ("N", "D"), "gpt4-c": ("C",)}


def _vp_inner(exps: np.ndarray, raw: list[np.ndarray], y: np.ndarray) -> tuple[np.ndarray, float]:
    """For fixed exponents the law E + Σ_k A_k X_k^-e_k is linear in (E, A_k): non-negative least squares."""
    from scipy.optimize import nnls

    cols = [np.ones_like(y)] + [np.exp(-e * lx) for e, lx in zip(exps, raw)]  # centred X^-e, (n,) each
    coef, rnorm = nnls(np.stack(cols, 1), y)
    return coef, rnorm * rnorm


def fit_varpro(law: Law, arrays: dict, n_grid: int = 60) -> tuple[np.ndarray, dict, float, int, int]:
    """VPNLS: exhaustive grid over the exponents in (0, 2], NNLS for the linear coefficients (least squares in
    loss space), then Nelder-Mead refinement of the exponents from the best grid cell."""
    import itertools

    from scipy.optimize import minimize

    if law.name not in _VARPRO:
        raise DataError(f"method varpro supports {', '.join(_VARPRO)}, not {law.name}", "use --method huber")
    x, x0, _ = _centre(law, arrays)
    raw, y = [x[k] for k in _VARPRO[law.name]], arrays["loss"]
    axis = np.linspace(2 / n_grid, 2.0, n_grid)
    grid = list(itertools.product(axis, repeat=len(raw)))
    sse = [_vp_inner(np.array(e), raw, y)[1] for e in grid]
    e0 = np.array(grid[int(np.argmin(sse))])
    res = minimize(lambda e: _vp_inner(np.abs(e), raw, y)[1], e0, method="Nelder-Mead",
                   options={"xatol": 1e-10, "fatol": 1e-14, "maxiter": 4000})
    exps = np.abs(res.x)
    coef, v = _vp_inner(exps, raw, y)
    coef = np.maximum(coef, 1e-300)  # a zero coefficient (NNLS bound) is kept finite for the log parametrisation
    if law.name == "chinchilla":
        th = np.array([np.log(coef[1]), np.log(coef[2]), np.log(coef[0]), exps[0], exps[1]])
    else:
        th = np.array([np.log(coef[1]), np.log(coef[0]), exps[0]])
    return th, x0, float(v), len(grid), int(np.sum(np.asarray(sse) <= min(sse) * (1 + 1e-6)))


# ---- the public entry point ----------------------------------------------------------------------------
def fit(law: str, *, loss, N=None, D=None, C=None, method: str = "huber", bootstrap: int = 0, seed: int = 0,
        groups=None, starts: int | str = "all", boot_starts: int = 4, delta: float = HUBER_DELTA,
        grid: dict | None = None, allow_partial_bootstrap: bool = False) -> FitResult:
    """Fit `law` to points (N, D, C, loss). bootstrap > 0 resamples points (or whole `groups`, e.g. runs) with
    replacement and refits from the full-data optimum plus the `boot_starts` best grid starts (95% intervals).
    `grid` replaces the law's multi-start grid ({θ name: values}). Deterministic given `seed`.

    Nothing is dropped silently: the result counts the resamples kept; with fewer than MIN_BOOT_KEPT of them
    the interval is withheld (unless `allow_partial_bootstrap`), with fewer than MIN_BOOT_GROUPS groups the
    bootstrap resamples points and says so, and a zero-width interval is never returned; `ci_note` says why."""
    import dataclasses

    lw = get_law(law)
    if grid is not None:
        lw = dataclasses.replace(lw, grid={k: tuple(grid[k]) for k in lw.theta})
    if method not in ("huber", "varpro"):
        raise DataError(f"unknown fit method '{method}'", "use huber or varpro")
    arrays = check_inputs(lw, loss, N=N, D=D, C=C)
    th, x0, obj, n_starts, conv = _fit_arrays(lw, arrays, method, starts, delta)
    params = {k: float(v) for k, v in lw.to_params(th, x0).items()}
    unit, n_groups, notes = None, None, []
    if bootstrap > 0:
        unit = "points"
        if groups is not None:
            n_groups = len(_group_members(groups, len(arrays["loss"])))
            if n_groups >= MIN_BOOT_GROUPS:
                unit = "runs"
            else:
                notes.append(f"bootstrap over points, not runs: {n_groups} run{'s' * (n_groups != 1)} < "
                             f"{MIN_BOOT_GROUPS} needed to resample runs; points of one run are correlated, so "
                             "the interval understates the uncertainty")
                groups = None
    boot = _bootstrap(lw, arrays, method, th, x0, bootstrap, seed, groups, boot_starts, delta)
    kept = len(boot)
    if bootstrap > 0 and kept < MIN_BOOT_KEPT * bootstrap:
        short = (f"only {kept} of {bootstrap} bootstrap resamples could be fitted (< {MIN_BOOT_KEPT:.0%}); the "
                 "ones that fit are a biased subset")
        if allow_partial_bootstrap:
            notes.append(f"interval from {short} (printed on request: --allow-partial-bootstrap)")
        else:
            notes.append(f"no interval: {short} (--allow-partial-bootstrap prints it anyway)")
            boot = []
    ci = {k: [float(np.quantile([b[k] for b in boot], 0.025)), float(np.quantile([b[k] for b in boot], 0.975))]
          for k in lw.params} if boot else {}
    flat = [k for k, (lo, hi) in ci.items() if not hi - lo > 1e-9 * max(abs(lo), abs(hi), 1e-300)]
    if flat:
        notes.append(f"no interval: every bootstrap resample gave the same {', '.join(flat)} (a zero-width "
                     "interval is not a 95% CI)")
        ci, boot = {}, []
    return FitResult(law=law, params=params, ci=ci, r2=r_squared(lw, params, arrays), n_points=len(arrays["loss"]),
                     method=method, objective=obj, n_starts=n_starts, converged_starts=conv, x0=x0, boot=boot,
                     n_bootstrap_requested=max(bootstrap, 0), n_bootstrap_kept=kept, bootstrap_unit=unit,
                     n_groups=n_groups, ci_note="; ".join(notes) or None)


def _fit_arrays(lw: Law, arrays: dict, method: str, starts, delta):
    if method == "varpro":
        return fit_varpro(lw, arrays)
    return fit_huber(lw, arrays, starts, delta)[:5]


def _bootstrap(lw: Law, arrays: dict, method: str, th: np.ndarray, x0: dict, n_boot: int, seed: int, groups,
               boot_starts: int, delta: float) -> list[dict[str, float]]:
    """Refit on n_boot resamples of points (or of whole `groups`). A resample is a vector of multiplicities
    over the original points, so every resample x start is one row of one batched L-BFGS run."""
    if n_boot <= 0:
        return []
    rng = np.random.default_rng(seed)
    members = _group_members(groups, len(arrays["loss"]))
    W = np.zeros((n_boot, len(arrays["loss"])))
    for b in range(n_boot):
        for i in rng.integers(0, len(members), len(members)):
            W[b, members[i]] += 1
    W = W[(W > 0).sum(1) > len(lw.params)]  # drop degenerate resamples (too few distinct points)
    if method == "varpro":
        out = []
        for w in W:
            idx = np.repeat(np.arange(len(w)), w.astype(int))
            bth, bx0 = fit_varpro(lw, {k: v[idx] for k, v in arrays.items()})[:2]
            out.append({k: float(v) for k, v in lw.to_params(bth, bx0).items()})
        return out
    from lmlab.scaling.optim import batched_lbfgs

    x, _, logy = _centre(lw, arrays)
    fg1 = huber_objective(lw, x, logy, np.ones_like(logy), delta)
    base = np.vstack([th[None], _select_starts(fg1, lw.starts(x0), boot_starts)]) if boot_starts else th[None]
    k = len(base)
    X, F, _ = batched_lbfgs(huber_objective(lw, x, logy, np.repeat(W, k, 0), delta), np.tile(base, (len(W), 1)))
    best = np.argmin(F.reshape(len(W), k), 1)
    with np.errstate(over="ignore"):
        out = [{n: float(v) for n, v in lw.to_params(X[b * k + j], x0).items()} for b, j in enumerate(best)]
    return [p for p in out if all(np.isfinite(v) for v in p.values())]  # drop diverged resamples (overflow)


def _group_members(groups, n: int) -> list[np.ndarray]:
    if groups is None:
        return [np.array([i]) for i in range(n)]
    g = np.asarray(groups)
    if len(g) != n:
        raise DataError("groups must have one label per point", "pass the run column of the same rows")
    return [np.flatnonzero(g == u) for u in dict.fromkeys(g.tolist())]


def r_squared(lw: Law, params: dict, arrays: dict) -> float:
    """R² of L̂ against L in loss space (1 − SS_res / SS_tot)."""
    pred = lw.predict(params, **{k: arrays[k] for k in lw.inputs})
    y = arrays["loss"]
    ss_tot = float(((y - y.mean()) ** 2).sum())
    return 1 - float(((y - pred) ** 2).sum()) / ss_tot if ss_tot > 0 else float("nan")

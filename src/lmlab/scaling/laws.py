"""Scaling-law functional forms as small named objects.

Every law predicts the *log* of the loss, log L̂ = f(θ, x), from log inputs x, so that the fit can minimise
Huber(log L̂ − log L) as Hoffmann et al. 2022 (App. D.2) and Besiroglu et al. 2024 (Epoch) do. Inputs are centred
before fitting (x = ln X − ln X0, X0 the geometric mean of the data) for conditioning; θ lives in that centred
log space and `to_params` maps it back to the public constants named as in each formula (DESIGN.md).

Each law's `value_jac(θ, x)` returns f (n,) and its Jacobian ∂f/∂θ (n, p), so L-BFGS gets exact gradients.
Log-sum-exp (LSE) terms follow the Chinchilla parametrisation: E + A/N^α + B/D^β = exp(LSE(a − α ln N,
b − β ln D, e)) with A = e^a, B = e^b, E = e^e.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lmlab.errors import ConfigError


@dataclass(frozen=True)
class Law:
    """One scaling law: name, formula, public parameter names, inputs it reads, and its log-space maths."""

    name: str
    """CLI name, e.g. "chinchilla"."""
    formula: str
    """Human-readable formula with the public parameter names."""
    params: tuple[str, ...]
    """Public parameters (names in the fit JSON)."""
    inputs: tuple[str, ...]
    """Columns read: subset of ("N", "D", "C")."""
    theta: tuple[str, ...]
    """Internal parameters in centred log space (same count as `params`)."""
    value_jac: Callable
    """(θ (p,), x {input: (n,) centred logs}) -> (f (n,), J (n, p)); f is the predicted log loss."""
    to_params: Callable
    """(θ, x0 {input: ln X0}) -> {public name: value}."""
    from_params: Callable
    """(params dict, x0) -> θ (inverse of to_params)."""
    grid: dict[str, tuple[float, ...]] = field(default_factory=dict)
    """Multi-start initial values per θ component (Cartesian product)."""
    doc: str = ""
    """Source of the form."""
    grid_raw: bool = False
    """True: `grid` is in raw (uncentred) log space, as published; starts are mapped to centred θ."""

    def starts(self, x0: dict[str, float]) -> np.ndarray:
        """The Cartesian grid of initial θ in the centred space of `x0`, shape (n_starts, p)."""
        g = np.array(list(itertools.product(*(self.grid[t] for t in self.theta))), dtype=np.float64)
        if not self.grid_raw:
            return g
        zero = {k: 0.0 for k in self.inputs}
        with np.errstate(over="ignore"):
            return np.array([self.from_params(self.to_params(th, zero), x0) for th in g])

    def predict(self, params: dict, **inputs) -> np.ndarray:
        """L̂ at raw inputs (e.g. N=..., D=...) from public params (no centring needed: x0 = 0)."""
        x0 = {k: 0.0 for k in self.inputs}
        th = self.from_params(params, x0)
        x = {k: np.log(np.asarray(inputs[k], dtype=np.float64)) for k in self.inputs}
        shape = np.broadcast_shapes(*(v.shape for v in x.values()))
        x = {k: np.broadcast_to(v, shape).ravel() for k, v in x.items()}
        with np.errstate(over="ignore", invalid="ignore"):
            return np.exp(self.value_jac(th, x)[0]).reshape(shape)


def _jac(*cols: np.ndarray) -> np.ndarray:
    """Stack ∂f/∂θ_j columns on the last axis: (n, p), or (S, n, p) when θ is batched as (p, S, 1)."""
    return np.stack(np.broadcast_arrays(*cols), -1)


def _lse(*terms: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """log(sum exp(terms)) and the softmax weights (the derivative of the LSE in each term)."""
    t = np.stack(np.broadcast_arrays(*terms))  # (k, n)
    m = t.max(0)
    e = np.exp(t - m)
    s = e.sum(0)
    return m + np.log(s), list(e / s)


# ---- Chinchilla (Hoffmann et al. 2022, Approach 3; Epoch refit Besiroglu et al. 2024) -------------------
def _chin_vj(th, x):
    a, b, e, al, be = th
    f, (w1, w2, w3) = _lse(a - al * x["N"], b - be * x["D"], e + 0.0 * x["N"])
    return f, _jac(w1, w2, w3, -w1 * x["N"], -w2 * x["D"])


CHINCHILLA = Law(
    name="chinchilla", formula="L(N, D) = E + A / N^alpha + B / D^beta", params=("E", "A", "B", "alpha", "beta"),
    inputs=("N", "D"), theta=("a", "b", "e", "alpha", "beta"), value_jac=_chin_vj,
    to_params=lambda th, x0: {"E": np.exp(th[2]), "A": np.exp(th[0] + th[3] * x0["N"]),
                              "B": np.exp(th[1] + th[4] * x0["D"]), "alpha": th[3], "beta": th[4]},
    from_params=lambda p, x0: np.array([np.log(p["A"]) - p["alpha"] * x0["N"], np.log(p["B"]) - p["beta"] * x0["D"],
                                        np.log(p["E"]), p["alpha"], p["beta"]]),
    # Hoffmann App. D.2 grid in *raw* log space (a, b in {0, 5, ..., 25}); `fit` shifts a, b by the centring.
    grid={"a": (0, 5, 10, 15, 20, 25), "b": (0, 5, 10, 15, 20, 25), "e": (-1, -0.5, 0, 0.5, 1),
          "alpha": (0, 0.5, 1, 1.5, 2), "beta": (0, 0.5, 1, 1.5, 2)}, grid_raw=True,
    doc="Hoffmann et al. 2022 (arXiv:2203.15556) eq. 2 / App. D.2; Besiroglu et al. 2024 (arXiv:2404.10102).")


# ---- GPT-4 predictable scaling: L(C) = a C^b + c, written E + A C^-alpha (OpenAI 2023, §3.1) -----------
def _gpt4_vj(th, x):
    a, e, al = th
    f, (w1, w2) = _lse(a - al * x["C"], e + 0.0 * x["C"])
    return f, _jac(w1, w2, -w1 * x["C"])


GPT4_C = Law(
    name="gpt4-c", formula="L(C) = E + A * C^-alpha", params=("E", "A", "alpha"), inputs=("C",),
    theta=("a", "e", "alpha"), value_jac=_gpt4_vj,
    to_params=lambda th, x0: {"E": np.exp(th[1]), "A": np.exp(th[0] + th[2] * x0["C"]), "alpha": th[2]},
    from_params=lambda p, x0: np.array([np.log(p["A"]) - p["alpha"] * x0["C"], np.log(p["E"]), p["alpha"]]),
    grid={"a": (-4, -3, -2, -1, 0, 1, 2), "e": (-2, -1, -0.5, 0, 0.5, 1, 1.5, 2),
          "alpha": (0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)},
    doc="OpenAI 2023, GPT-4 Technical Report §3.1 (irreducible-loss form after Henighan et al. 2020).")


# ---- Kaplan et al. 2020 single-variable laws: L(X) = (X_c / X)^alpha_X (eq. 1.1, 1.2) -------------------
def _pure_vj(col):
    def vj(th, x):
        k, al = th  # k = log L at the centring point X0
        f = k - al * x[col]
        return f, _jac(np.ones_like(f), -x[col] + 0.0 * f)

    return vj


def _pure_law(name: str, col: str, pname: str, ename: str, doc: str) -> Law:
    return Law(
        name=name, formula=f"L({col}) = ({pname} / {col})^{ename}", params=(pname, ename), inputs=(col,),
        theta=("k", ename), value_jac=_pure_vj(col),
        # ln L = alpha (ln Xc - ln X) = k - alpha (ln X - ln X0)  =>  ln Xc = k / alpha + ln X0
        to_params=lambda th, x0: {pname: np.exp(th[0] / th[1] + x0[col]), ename: th[1]},
        from_params=lambda p, x0: np.array([p[ename] * (np.log(p[pname]) - x0[col]), p[ename]]),
        grid={"k": (-1, 0, 0.5, 1, 1.5, 2, 3), ename: (0.01, 0.05, 0.1, 0.3, 1.0)}, doc=doc)


KAPLAN_N = _pure_law("kaplan-n", "N", "N_c", "alpha_N", "Kaplan et al. 2020 (arXiv:2001.08361) eq. 1.1.")
KAPLAN_D = _pure_law("kaplan-d", "D", "D_c", "alpha_D", "Kaplan et al. 2020 (arXiv:2001.08361) eq. 1.2.")
KAPLAN_C = _pure_law("kaplan-c", "C", "C_c", "alpha_C", "Kaplan et al. 2020 (arXiv:2001.08361) eq. 1.3 (fixed batch); "
                     "a straight line in log L vs log C, the baseline of the compute-slowdown measurement.")


# ---- Kaplan joint law L(N, D) = [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D (eq. 1.5) ------------------
def _kaplan_nd_vj(th, x):
    u, v, an, ad = th  # u = ln N_c - ln N0, v = ln D_c - ln D0
    s1 = (an / ad) * (u - x["N"])
    g, (w1, w2) = _lse(s1, v - x["D"])
    return ad * g, _jac(w1 * an, ad * w2, w1 * (u - x["N"]), g - w1 * s1)


KAPLAN_ND = Law(
    name="kaplan-nd", formula="L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D",
    params=("N_c", "D_c", "alpha_N", "alpha_D"), inputs=("N", "D"), theta=("u", "v", "alpha_N", "alpha_D"),
    value_jac=_kaplan_nd_vj,
    to_params=lambda th, x0: {"N_c": np.exp(th[0] + x0["N"]), "D_c": np.exp(th[1] + x0["D"]),
                              "alpha_N": th[2], "alpha_D": th[3]},
    from_params=lambda p, x0: np.array([np.log(p["N_c"]) - x0["N"], np.log(p["D_c"]) - x0["D"],
                                        p["alpha_N"], p["alpha_D"]]),
    grid={"u": (0, 5, 10, 20), "v": (0, 5, 10, 20), "alpha_N": (0.03, 0.1, 0.3), "alpha_D": (0.03, 0.1, 0.3)},
    doc="Kaplan et al. 2020 (arXiv:2001.08361) eq. 1.5 / 4.1.")


# ---- GPT-4 pass-rate law: -E_P[log pass_rate(C)] = alpha C^-k (OpenAI 2023, §3.2) ----------------------
PASSRATE = Law(
    name="passrate", formula="-E[log pass_rate](C) = alpha * C^-k", params=("alpha", "k"), inputs=("C",),
    theta=("m", "k"), value_jac=_pure_vj("C"),
    to_params=lambda th, x0: {"alpha": np.exp(th[0] + th[1] * x0["C"]), "k": th[1]},
    from_params=lambda p, x0: np.array([np.log(p["alpha"]) - p["k"] * x0["C"], p["k"]]),
    grid={"m": (-4, -2, -1, 0, 1, 2), "k": (0.01, 0.05, 0.1, 0.3, 1.0)},
    doc="OpenAI 2023, GPT-4 Technical Report §3.2 (the 'loss' column holds -mean log pass rate).")


# ---- smoothly broken power law in C (Caballero et al. 2022, one break) -------------------------------
def _bpl_vj(th, x):
    a, e, al, al2, xb = th
    z = x["C"] - xb
    sp, sig = np.logaddexp(0.0, z), 0.5 * (1 + np.tanh(z / 2))  # softplus(z), sigmoid(z)
    f, (wg, we) = _lse(a - al * x["C"] - (al2 - al) * sp, e + 0.0 * z)
    return f, _jac(wg, we, wg * (sp - x["C"]), -wg * sp, wg * (al2 - al) * sig)


BROKEN_C = Law(
    name="broken-c", formula="L(C) = E + A * C^-alpha * (1 + C / C_b)^-(alpha2 - alpha)",
    params=("E", "A", "alpha", "alpha2", "C_b"), inputs=("C",), theta=("a", "e", "alpha", "alpha2", "xb"),
    value_jac=_bpl_vj,
    to_params=lambda th, x0: {"E": np.exp(th[1]), "A": np.exp(th[0] + th[2] * x0["C"]), "alpha": th[2],
                              "alpha2": th[3], "C_b": np.exp(th[4] + x0["C"])},
    from_params=lambda p, x0: np.array([np.log(p["A"]) - p["alpha"] * x0["C"], np.log(p["E"]), p["alpha"],
                                        p["alpha2"], np.log(p["C_b"]) - x0["C"]]),
    grid={"a": (-3, -1, 1), "e": (-1, 0, 1), "alpha": (0.05, 0.3, 1.0), "alpha2": (0.05, 0.3, 1.0),
          "xb": (-2, 0, 2)},
    doc="Broken neural scaling law with one break (Caballero et al. 2022, arXiv:2210.14891), smoothness 1.")


LAWS: dict[str, Law] = {law.name: law for law in (KAPLAN_N, KAPLAN_D, KAPLAN_C, KAPLAN_ND, GPT4_C, CHINCHILLA, PASSRATE,
                                                   BROKEN_C)}


def get_law(name: str) -> Law:
    if name not in LAWS:
        raise ConfigError(f"unknown scaling law '{name}'", f"choose one of: {', '.join(LAWS)}")
    return LAWS[name]

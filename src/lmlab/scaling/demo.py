"""Demo stage for `lmlab demo`: the Chinchilla Approach-3 fit of Epoch's points (Hoffmann et al. 2022 Fig. 4,
Besiroglu et al. 2024) with bootstrap intervals and iso-loss contours, and a GPT-4-style L(C) fit on the
compute-efficient frontier of the same points with its 95% band, extrapolated 10x beyond the fit range."""

from __future__ import annotations

from pathlib import Path


def demo_stage(out: Path, quick: bool):
    """(Section, JSON-able dict). quick: the 30 best grid starts and 50 bootstrap resamples refitted from the
    optimum (seconds); otherwise the full 4,500-start grid and 1,000 resamples from 5 starts each."""
    from lmlab.report.html import Section
    from lmlab.scaling.fit import fit
    from lmlab.scaling.plots import fit_plot, isoloss_plot
    from lmlab.scaling.predict import allocation, frontier
    from lmlab.scaling.table import epoch_chinchilla

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    d = epoch_chinchilla()
    n_boot, starts, boot_starts = (50, 30, 0) if quick else (1000, "all", 4)
    chin = fit("chinchilla", N=d["N"], D=d["D"], loss=d["loss"], starts=starts, bootstrap=n_boot, seed=0,
               boot_starts=boot_starts)
    iso = isoloss_plot(chin, d["N"], d["D"], d["loss"], out / "scaling_chinchilla.png",
                       title="Chinchilla Fig. 4 points (Epoch): fit and iso-loss contours")
    f = frontier(d["C"], d["loss"])
    lc = fit("gpt4-c", C=d["C"][f], loss=d["loss"][f], bootstrap=n_boot, seed=0, boot_starts=boot_starts)
    curve = fit_plot(lc, d["C"][f], d["loss"][f], out / "scaling_loss_vs_compute.png", "C",
                     x_max=10 * d["C"].max(), title="L(C) = E + A C^-alpha on the compute-efficient frontier")
    alloc = allocation(chin, [5.76e23])[0]
    table = {**{f"chinchilla {k}": _with_ci(chin, k) for k in chin.params},
             "Epoch refit (reference)": "E 1.8172, A 482.01, B 2085.43, alpha 0.3478, beta 0.3658",
             "R²": chin.r2, "points": chin.n_points, "starts agreeing on the optimum": chin.converged_starts,
             "N_opt at 5.76e23 FLOPs": f"{alloc['N_opt']:.3g}", "tokens/param there": alloc["tokens_per_param"],
             **{f"L(C) {k}": _with_ci(lc, k) for k in lc.params},
             **{f"{name} bootstrap": f"{r.n_bootstrap_kept} of {r.n_bootstrap_requested} resamples kept"
                + (f"; {r.ci_note}" if r.ci_note else "") for name, r in (("chinchilla", chin), ("L(C)", lc))}}
    text = ("Huber loss on log residuals (δ = 1e-3, summed as in Epoch's correction), multi-start L-BFGS over "
            "Hoffmann's grid, 95% bootstrap intervals. The refit reproduces Epoch's constants; A and B are weakly "
            f"identified. Frontier fit: {len(f)} points, extrapolated 10x beyond the largest compute.")
    result = {"chinchilla": chin.to_json(), "allocation_5.76e23": alloc, "loss_vs_compute": lc.to_json(),
              "images": [str(iso), str(curve)], "quick": quick}
    return Section("Scaling laws", text=text, table=table, images=[str(iso), str(curve)]), result


def _with_ci(res, k: str) -> str:
    """'value [lo, hi]', or 'value (no interval)' when the fit withheld it (its ci_note says why)."""
    v = res.params[k]
    return f"{v:.4g} [{res.ci[k][0]:.4g}, {res.ci[k][1]:.4g}]" if k in res.ci else f"{v:.4g} (no interval)"


__all__ = ["demo_stage"]

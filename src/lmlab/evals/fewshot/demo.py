"""Demo stage: one in-context learning curve of the embedded SmolLM2-135M on GPT-3's 2D+ arithmetic task."""

from __future__ import annotations

from pathlib import Path


def demo_stage(out: Path, quick: bool):
    """Evaluate 2D+ at K = 0, 1, 5 (+10 without quick); returns (report Section, summary dict)."""
    from lmlab.evals.fewshot.curves import curve_table, plot_curves, run_grid
    from lmlab.evals.fewshot.evaluate import FewshotConfig
    from lmlab.report.html import Section

    out = Path(out)
    cfg = FewshotConfig(model="smollm2", tasks="2D+", shots="0,1,5" if quick else "0,1,5,10",
                        limit=10 if quick else 50, batch_size=16)
    results = run_grid(cfg, out / "fewshot")  # resumable: a re-run reuses finished cells
    png = plot_curves(results, out / "fewshot_curve.png", "SmolLM2-135M: 2D+ exact match vs K (95 % CI)")
    rows = curve_table(results)
    table = {f"K = {r['K']}": f"{100 * r['value']:.1f} % [{100 * r['ci'][0]:.1f}, {100 * r['ci'][1]:.1f}] "
                              f"(n = {r['n']})" for r in rows}
    text = ("GPT-3's protocol (Brown et al. 2020, §2.4): K demonstrations drawn per example (seeded) from a separate "
            "pool, 'Q: What is 48 plus 76?\\n\\nA:' prompts, greedy generation until a newline, exact match. "
            "Error bars and brackets: 95 % Wilson intervals (exact match is a proportion; a normal interval "
            "would reach below 0 % at small accuracies).")
    return (Section("Few-shot in-context learning (GPT-3 protocol)", text=text, table=table, images=[str(png)]),
            {"task": "2D+", "curve": rows})

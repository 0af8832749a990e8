"""Merge steering sweeps run on the same prompts, direction and seed (e.g. a second r grid added later) and
re-summarise: NLL gaps to plain at matched concept use the union of plain's r values.

usage: python experiments/glp_apps_merge_sweeps.py OUT_DIR SWEEP_DIR [SWEEP_DIR ...]
Writes OUT_DIR/steer_merged.json and OUT_DIR/steer_merged_pareto.png.
"""

import sys
from pathlib import Path


def main():
    from lmlab.glp.steering.sweep import pareto_plot, summarise
    from lmlab.io import read_json, read_jsonl, write_json

    out, dirs = Path(sys.argv[1]), [Path(d) for d in sys.argv[2:]]
    cfgs = [read_json(d / "config.json") for d in dirs]
    keys = ("glp", "concept", "vector", "n_prompts", "max_new_tokens", "n_docs", "seed", "sigma_s", "steps", "prompts")
    if any(any(c[k] != cfgs[0][k] for k in keys) for c in cfgs):
        raise SystemExit("sweeps differ in prompts/direction/seed settings: not mergeable")
    rows = {}
    for d in dirs:
        for r in read_jsonl(d / "conditions.jsonl"):
            rows[r["mode"], r["r"]] = r
    rows = [rows[k] for k in sorted(rows, key=lambda k: (k[1], k[0]))]
    summary = summarise(rows, 2000, 0)
    summary.update(sweeps=[str(d) for d in dirs], config=cfgs[0])
    write_json(out / "steer_merged.json", summary)
    pareto_plot(summary, out / "steer_merged_pareto.png", title="steering medical at layer 15 (merged r grids)")


if __name__ == "__main__":
    main()

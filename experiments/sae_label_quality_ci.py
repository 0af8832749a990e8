"""95% intervals for the label-quality proportions of an `lmlab sae label` run: token positive rates and precision
by a bootstrap over documents (tokens of one document are not independent), document shares by Wilson.

    python experiments/sae_label_quality_ci.py --labels LABELS/labels.jsonl --domain medical --out OUT.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", required=True)
    ap.add_argument("--domain", default="medical")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n-boot", type=int, default=2000)
    a = ap.parse_args(argv)
    from lmlab.io import write_json
    from lmlab.stats import wilson_ci

    rows = [json.loads(line) for line in Path(a.labels).read_text().splitlines()]
    dom = np.array([r["domain"] == a.domain for r in rows])
    pos = np.array([sum(y for (s, e), y in zip(r["spans"], r["labels"]) if e > s) for r in rows], float)
    n = np.array([sum(1 for s, e in r["spans"] if e > s) for r in rows], float)  # specials have no characters

    def figures(i):
        d, o = i[dom[i]], i[~dom[i]]
        tp, fp = pos[d].sum(), pos[o].sum()
        return [tp / n[d].sum(), fp / n[o].sum(), tp / max(tp + fp, 1)]

    rng = np.random.default_rng(0)
    idx = np.arange(len(rows))
    boots = np.array([figures(rng.choice(idx, len(idx))) for _ in range(a.n_boot)])
    est = figures(idx)
    names = ["positive_rate_domain", "positive_rate_other", "precision"]
    out = {k: {"estimate": float(e), "ci95": [float(x) for x in np.percentile(boots[:, j], [2.5, 97.5])]}
           for j, (k, e) in enumerate(zip(names, est))}
    for k, m in (("docs_with_a_positive_domain", dom), ("docs_with_a_positive_other", ~dom)):
        share = float((pos[m] > 0).mean())
        out[k] = {"estimate": share, "ci95": wilson_ci(share, int(m.sum())), "n_docs": int(m.sum())}
    write_json(a.out, {"labels": Path(a.labels).name, "domain": a.domain, "n_boot": a.n_boot, **out})
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A seeded random sample of labelled spans for checking by hand, and the summary of the verdicts given.

    python experiments/sae_label_sample.py --labels LABELS/labels.jsonl --out SAMPLE.json [--n 40] [--seed 0]

First run: writes SAMPLE.json, one entry per sampled span (document id and domain, the span with 35 characters
of context either side, "verdict": null). A person fills each verdict with one of
    content  medical / anatomical content (the concept the labels are for)
    tag      a subject tag of the dictionary entry, e.g. "Med" of "(Med.)": domain-indicative, not content
    wrong    anything else (function words reached by span growth, etymology, general-domain text)
Re-run: the same sample (same seed), verdicts kept, and a "summary" with each verdict's share and its Wilson
95% interval.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

VERDICTS = ("content", "tag", "wrong")


def spans(rows: list[dict]) -> list[dict]:
    """Maximal runs of labelled tokens, as character spans of their documents."""
    out = []
    for r in rows:
        lab, sp, i = r["labels"], r["spans"], 0
        while i < len(lab):
            if not lab[i]:
                i += 1
                continue
            j = i
            while j < len(lab) and lab[j]:
                j += 1
            s, e, t = sp[i][0], sp[j - 1][1], r["text"]
            out.append({"doc": r["id"], "domain": r["domain"], "left": t[max(0, s - 35):s], "span": t[s:e],
                        "right": t[e:e + 35], "verdict": None})
            i = j
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from lmlab.io import write_json
    from lmlab.stats import wilson_ci

    rows = [json.loads(line) for line in Path(args.labels).read_text().splitlines()]
    all_spans = spans(rows)
    sample = random.Random(args.seed).sample(all_spans, min(args.n, len(all_spans)))
    out = Path(args.out)
    if out.is_file():  # keep the verdicts already given to the same spans
        given = {(s["doc"], s["left"], s["span"]): s["verdict"] for s in json.loads(out.read_text())["sample"]}
        for s in sample:
            s["verdict"] = given.get((s["doc"], s["left"], s["span"]))
    if bad := [s["verdict"] for s in sample if s["verdict"] not in (None, *VERDICTS)]:
        raise SystemExit(f"unknown verdicts {sorted(set(bad))}: use one of {', '.join(VERDICTS)}")
    done = [s["verdict"] for s in sample if s["verdict"] is not None]
    summary = {"n_spans": len(all_spans), "n_sampled": len(sample), "n_judged": len(done),
               **{v: {"count": done.count(v), "share": done.count(v) / len(done),
                      "wilson95": wilson_ci(done.count(v) / len(done), len(done))} for v in VERDICTS if done}}
    write_json(out, {"labels": Path(args.labels).name, "seed": args.seed, "summary": summary, "sample": sample})
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""End-to-end harvest: documents in, verified layer-L activation store out — lmlab's harvester vs an nnsight loop.

bench/harvest_throughput.py compares the *read* of the residual on identical padded batches. A researcher's
real job is "these documents -> activations on disk", where batching is the tool's choice. Here, in one
process, on the same documents of the embedded corpus (SmolLM2-135M-Instruct, layer 15, seq 256, 8 rows per
forward), for each dtype in --dtypes, we time:
  lmlab         `lmlab.acts.harvest(...)` with its default batching (issue 18: documents packed several to a
                row, position ids restarting per document, block-diagonal causal mask), then `verify_store`:
                BOS handling, forward stopped after block L, shards + provenance + float64 stats + sha256
                (model load included).
  lmlab_sorted  the same with `batching="sorted"`: the pre-issue-18 harvester (blocks sorted by length,
                8 documents per forward, right-padded to the longest).
  nnsight       the documented nnsight loop: documents in corpus order, 8 per `lm.trace(...)`, right padding,
                `model.layers[L].output.save()` (full forward), non-pad rows gathered and np.save'd.
  nnsight_stop  the same with `tracer.stop()` after the save (nnsight's best effort).
Rows counted = stored activations (lmlab excludes special tokens, so it stores slightly fewer: the ratio uses
rows/s, which favours the anchors). Padding share = 1 - real tokens / positions run through the model (lmlab:
the store manifest's `padding` entry; nnsight: the padded batches). Methods alternate for --repeats rounds.

Run: python bench/harvest_end_to_end.py --out bench/results          (needs the `bench` extra: nnsight)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lmlab.io import write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory for harvest_end_to_end.json")
    p.add_argument("--docs", type=int, default=400, help="first N documents of the embedded train split")
    p.add_argument("--layer", type=int, default=15)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dtypes", default="fp32,bf16", help="comma-separated, from bf16 and fp32; all in one run")
    p.add_argument("--repeats", type=int, default=2)
    return p.parse_args(argv)


def corpus_file(n: int, where: Path) -> tuple[Path, list[str]]:
    """The first n embedded train documents as a JSONL corpus (so both tools read the very same texts)."""
    from lmlab.data.corpus import iter_documents

    docs = []
    for d in iter_documents(None, split="train"):
        docs.append(d)
        if len(docs) == n:
            break
    path = where / "docs.jsonl"
    path.write_text("".join(json.dumps({"text": d.text, "domain": d.domain}) + "\n" for d in docs))
    # a local corpus is hash-split like the embedded one (~2% held out): give nnsight exactly the docs lmlab reads
    return path, [d.text for d in iter_documents(str(path), split="train")]


def run_lmlab(args, dtype: str, corpus: Path, where: Path, k: int, batching: str) -> tuple[int, float, float]:
    """(rows, seconds, padding share) of one harvest into a fresh store, verified inside the timing."""
    from lmlab.acts import harvest
    from lmlab.acts.store import ActivationStore, verify_store

    out = where / f"lmlab-{dtype}-{batching}-{k}"
    t = time.perf_counter()
    m = harvest(model="smollm2", layer=args.layer, tokens=10**9, out=str(out), corpus=str(corpus),
                seq_len=args.seq, batch=args.batch, dtype=dtype, batching=batching, device="cpu", progress=False)
    if problems := verify_store(out):
        raise SystemExit(f"store {out} failed verification: {problems[0]}")
    return len(ActivationStore.open(out)), time.perf_counter() - t, m["padding"]["share"]


def run_nnsight(lm, tok, texts: list[str], args, dtype: str, where: Path, k: int,
                stop: bool) -> tuple[int, float, float]:
    t = time.perf_counter()
    rows, positions = [], 0
    for s in range(0, len(texts), args.batch):
        enc = tok(texts[s:s + args.batch], return_tensors="pt", padding=True, truncation=True, max_length=args.seq)
        positions += enc["input_ids"].numel()
        with torch.inference_mode(), lm.trace(enc["input_ids"], attention_mask=enc["attention_mask"]) as tracer:
            h = lm.model.layers[args.layer].output
            h = (h[0] if isinstance(h, tuple) else h).save()
            if stop:
                tracer.stop()
        h = h.value if hasattr(h, "value") else h
        rows.append(h[enc["attention_mask"].bool()].to(torch.bfloat16 if dtype == "bf16" else torch.float32))
    acts = torch.cat(rows)
    np.save(where / f"nnsight-{dtype}-{k}-{stop}.npy", acts.view(torch.int16).numpy() if dtype == "bf16" else acts.numpy())
    return acts.shape[0], time.perf_counter() - t, 1 - acts.shape[0] / positions


def run_dtype(args, dtype: str, corpus: Path, texts: list[str], where: Path) -> dict:
    """All methods on one dtype, alternating for args.repeats rounds: {method: summary}."""
    from nnsight import LanguageModel

    from lmlab.models import load_causal_lm

    hf, tok = load_causal_lm("smollm2", dtype="bfloat16" if dtype == "bf16" else "float32")
    tok.padding_side = "right"
    lm = LanguageModel(hf, tokenizer=tok)
    results: dict[str, list[tuple[int, float, float]]] = {m: [] for m in METHODS}
    for k in range(args.repeats):
        results["lmlab"].append(run_lmlab(args, dtype, corpus, where, k, "packed"))
        results["lmlab_sorted"].append(run_lmlab(args, dtype, corpus, where, k, "sorted"))
        results["nnsight"].append(run_nnsight(lm, tok, texts, args, dtype, where, k, stop=False))
        results["nnsight_stop"].append(run_nnsight(lm, tok, texts, args, dtype, where, k, stop=True))
        print(f"{dtype} round {k}: " + ", ".join(f"{m} {r[-1][0] / r[-1][1]:,.0f} rows/s"
                                                 for m, r in results.items()), flush=True)
    summary = {m: {"rows": r[0][0], "padding_share": r[0][2], "rows_per_sec": [n / s for n, s, _ in r],
                   "median_rows_per_sec": statistics.median(n / s for n, s, _ in r)} for m, r in results.items()}
    for m in METHODS[1:]:
        summary[m]["lmlab_ratio"] = summary["lmlab"]["median_rows_per_sec"] / summary[m]["median_rows_per_sec"]
    return summary


METHODS = ("lmlab", "lmlab_sorted", "nnsight", "nnsight_stop")


def main(argv=None) -> int:
    args = parse_args(argv)
    load0 = os.getloadavg()  # > 2 on this 2-core machine: something else shared the cores
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if not dtypes or set(dtypes) - {"bf16", "fp32"}:
        raise SystemExit(f"--dtypes takes bf16 and/or fp32, not {args.dtypes!r}")
    torch.set_num_threads(torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        corpus, texts = corpus_file(args.docs, where)
        summary = {d: run_dtype(args, d, corpus, texts, where) for d in dtypes}
    record = {"command": " ".join(["python", *sys.argv]), "args": vars(args), "torch": torch.__version__,
              "threads": torch.get_num_threads(), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "cpus": os.cpu_count(), "loadavg_1_5_15_at_start": load0, "loadavg_1_5_15_at_end": os.getloadavg(),
              "results": summary}
    write_json(Path(args.out) / "harvest_end_to_end.json", record)
    for d, res in summary.items():
        for m, r in res.items():
            ratio = f"lmlab {r['lmlab_ratio']:.2f}x" if "lmlab_ratio" in r else ""
            print(f"{d} {m:13s} {r['rows']:>7,d} rows  padding {r['padding_share']:5.1%}  "
                  f"{r['median_rows_per_sec']:>8,.0f} rows/s  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

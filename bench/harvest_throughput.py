"""Residual-stream harvest throughput: lmlab vs TransformerLens vs nnsight on SmolLM2-135M, one layer.

What is measured: tokens/s of reading the residual stream at layer L (default 15 = output of decoder block 15
of 30, 0-indexed; HF `hidden_states[L + 1]`, TL `blocks.{L}.hook_resid_post`) of the embedded SmolLM2-135M-
Instruct (`lmlab.models.load_causal_lm("smollm2")`, 30 layers, d=576). Tokens/s counts real (non-pad) tokens.

What is compared (all under `torch.inference_mode`, same batches, same process, same thread count):
  lmlab         `lmlab.acts.hooks.forward_to_layer(model, input_ids, L, attention_mask)` on the HF
                LlamaForCausalLM: runs blocks 0..L only (no later blocks, no final norm, no logits).
  tl            TransformerLens 3.9 `HookedTransformer.run_with_cache(ids, attention_mask=...,
                names_filter="blocks.{L}.hook_resid_post")`: TL's default harvesting call (full forward,
                logits included). SmolLM2 is not an official TL model, so the config is built by hand from
                the HF config (as TL's own Llama branch would) and the weights converted with TL's
                `convert_llama_weights`, loaded with no processing (no LN folding, no centring).
  tl_stop       the same call with `stop_at_layer=L + 1` ("TL best effort": blocks 0..L only).
  nnsight       nnsight 0.8 `LanguageModel(hf_model, tokenizer=tok)`; inside `lm.trace(ids,
                attention_mask=...)`: `lm.model.layers[L].output.save()` (full forward, logits included).
                It wraps its own copy of the HF model, so its hooks cannot touch lmlab's.
  nnsight_stop  the same plus `tracer.stop()` after the save ("nnsight best effort": blocks 0..L only).
Documents: the first documents of the embedded corpus (train split) until `--tokens` real tokens, each
tokenized by SmolLM2's tokenizer (no special tokens added) and truncated to `--seq`; consecutive groups of
`--batch` form the batches, right-padded to the group's longest document, with an attention mask.

Before timing, every method's activations are compared with lmlab's on the first and the longest batch at
non-pad positions, and lmlab's with HF's `output_hidden_states[L + 1]`. In fp32 the script stops unless every
element agrees within |delta| <= 1e-3 + 1e-5 * |reference| (torch.allclose's form). A pure 1e-3 absolute
bound is not usable here: SmolLM2's residual stream has massive activations at the first position (|h| ~ 1e3
from layer 2 on, ~2.5e4 at layer 15), where one fp32 ulp is up to ~2e-3; the JSON records the plain max
|delta|, the max |delta| without position 0, and the max |reference| as well. bf16 deltas are recorded as
information only, together with each method's bf16 delta from lmlab's fp32 activations (its own rounding
error, for scale).

Timing: one warm-up call per method, then `--repeats` passes over the batches; for each batch every method
runs once, in an order rotated from batch to batch (interleaved, so slow drift hits all methods alike).
Reported per method: aggregate tokens/s (all real tokens / all seconds: the cost of harvesting the set),
median/min/max of the per-batch tokens/s, and per batch the paired ratio lmlab / method.

Run: python bench/harvest_throughput.py --out bench/results      (see bench/README.md)
"""

from __future__ import annotations

import argparse
import copy
import datetime
import gc
import hashlib
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

from lmlab.acts.hooks import forward_to_layer
from lmlab.data.corpus import iter_documents
from lmlab.io import write_json
from lmlab.models import load_causal_lm

METHODS = ("lmlab", "tl", "tl_stop", "nnsight", "nnsight_stop")
DEFAULT_ANCHORS = ("tl", "nnsight")  # each library's ordinary harvesting call
BEST_EFFORT_ANCHORS = ("tl_stop", "nnsight_stop")  # the same, stopped after block L
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
ATOL, RTOL = 1e-3, 1e-5  # fp32 agreement: |delta| <= ATOL + RTOL * |reference|, element-wise
GOAL = 2.0  # project goal: lmlab >= 2x the faster anchor


def _site_path(module) -> str:
    """Where a package was imported from, without this machine's prefix: <site-packages>/pkg/__init__.py."""
    f = Path(module.__file__)
    return f"<site-packages>/{f.relative_to(f.parents[1]).as_posix()}"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", required=True, help="directory; writes DIR/harvest_throughput.json")
    p.add_argument("--layer", type=int, default=15,
                   help="residual stream after decoder block LAYER (0-indexed)")
    p.add_argument("--tokens", type=int, default=8192,
                   help="take documents until this many real tokens (8192: ~5 min on 2 cores)")
    p.add_argument("--seq", type=int, default=256, help="truncate each document to SEQ tokens")
    p.add_argument("--batch", type=int, default=8, help="documents per batch (right-padded)")
    p.add_argument("--dtypes", default="fp32,bf16", help="comma list: fp32, bf16 (weights cast, all methods)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma list of {', '.join(METHODS)}")
    p.add_argument("--repeats", type=int, default=1, help="timed passes over all batches")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch.set_num_threads")
    args = p.parse_args(argv)
    args.dtypes, args.methods = args.dtypes.split(","), args.methods.split(",")
    if "fp32" in args.dtypes:  # fp32 first: its check is the enforced one and the reference for the others
        args.dtypes.sort(key=lambda d: d != "fp32")
    unknown = [d for d in args.dtypes if d not in DTYPES] + [m for m in args.methods if m not in METHODS]
    if unknown:
        p.error(f"unknown dtype/method: {', '.join(unknown)}")
    if "lmlab" not in args.methods:
        p.error("--methods must include lmlab (the reference for the checks and ratios)")
    return args


def environment(args: argparse.Namespace) -> dict:
    """Everything needed to interpret (and reproduce) the numbers."""
    from importlib.metadata import version

    import nnsight
    import transformer_lens
    import transformers

    from lmlab.acts import hooks

    info = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            key, _, val = line.partition(":")
            info.setdefault(key.strip(), val.strip())
    git = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(hooks.__file__).parent, capture_output=True,
                         text=True, check=False).stdout.strip() or None
    return {"command": shlex.join(["python"] + sys.argv), "python_executable": Path(sys.executable).name,
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "transformer_lens": version("transformer-lens"), "nnsight": version("nnsight"),
            "transformer_lens_module": _site_path(transformer_lens), "nnsight_module": _site_path(nnsight),
            "python": platform.python_version(), "cpu_model": info.get("model name", platform.processor()),
            "cpu_count": os.cpu_count(), "torch_num_threads": torch.get_num_threads(),
            "loadavg_1_5_15_at_start": os.getloadavg(), "git_commit": git,
            "hooks_py_sha256": hashlib.sha256(Path(hooks.__file__).read_bytes()).hexdigest()[:16],
            **{k: getattr(args, k) for k in ("layer", "tokens", "seq", "batch", "repeats", "methods")}}


# --- data ---------------------------------------------------------------------------------------------


def make_batches(tok, n_tokens: int, seq: int, batch: int) -> list[dict]:
    """First documents of the embedded corpus up to n_tokens real tokens, in right-padded batches."""
    rows, total = [], 0
    for doc in iter_documents(None, split="train"):
        ids = tok(doc.text, add_special_tokens=False, truncation=True, max_length=seq)["input_ids"]
        if ids:
            rows.append(ids)
            total += len(ids)
        if total >= n_tokens and len(rows) % batch == 0:
            break
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    out = []
    for i in range(0, len(rows), batch):
        group = rows[i:i + batch]
        width = max(map(len, group))
        ids = torch.full((len(group), width), pad, dtype=torch.long)
        mask = torch.zeros((len(group), width), dtype=torch.long)
        for j, r in enumerate(group):
            ids[j, :len(r)], mask[j, :len(r)] = torch.tensor(r), 1
        out.append({"input_ids": ids, "attention_mask": mask, "tokens": int(mask.sum())})
    return out


# --- the three libraries --------------------------------------------------------------------------------


def build_tl(hf, tok, dtype: torch.dtype):
    """A TransformerLens HookedTransformer holding hf's weights, unprocessed (no folding, no centring)."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights

    c = hf.config
    rope = (getattr(c, "rope_parameters", None) or {}).get("rope_theta", getattr(c, "rope_theta", None))
    kv = c.num_key_value_heads
    cfg = HookedTransformerConfig(  # mirrors TL's LlamaForCausalLM branch of convert_hf_model_config
        d_model=c.hidden_size, d_head=c.head_dim, n_heads=c.num_attention_heads, d_mlp=c.intermediate_size,
        n_layers=c.num_hidden_layers, n_ctx=c.max_position_embeddings, eps=c.rms_norm_eps,
        d_vocab=c.vocab_size, act_fn=c.hidden_act,
        n_key_value_heads=kv if kv != c.num_attention_heads else None,
        normalization_type="RMS", positional_embedding_type="rotary", rotary_adjacent_pairs=False,
        rotary_dim=c.head_dim, rotary_base=rope, final_rms=True, gated_mlp=True,
        original_architecture="LlamaForCausalLM", default_prepend_bos=False, dtype=dtype, device="cpu")
    tl = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
    tl.load_and_process_state_dict(convert_llama_weights(hf, cfg), fold_ln=False,
                                   center_writing_weights=False, center_unembed=False,
                                   fold_value_biases=False)
    return tl.eval()


def build_methods(dtype: torch.dtype, layer: int, names: list[str]) -> tuple[dict[str, Callable], dict]:
    """name -> fn(batch) -> (B, T, d) residual at `layer`, plus lmlab's HF model (the reference) in `info`."""
    from nnsight import LanguageModel

    hf, tok = load_causal_lm("smollm2")
    hf.to(dtype)
    hook = f"blocks.{layer}.hook_resid_post"
    fns = {"lmlab": lambda b: forward_to_layer(hf, b["input_ids"], layer, b["attention_mask"])}
    if {"tl", "tl_stop"} & set(names):
        tl = build_tl(hf, tok, dtype)
        fns["tl"] = lambda b: tl.run_with_cache(b["input_ids"], attention_mask=b["attention_mask"],
                                                names_filter=hook)[1][hook]
        fns["tl_stop"] = lambda b: tl.run_with_cache(b["input_ids"], attention_mask=b["attention_mask"],
                                                     names_filter=hook, stop_at_layer=layer + 1)[1][hook]
    if {"nnsight", "nnsight_stop"} & set(names):
        lm = LanguageModel(copy.deepcopy(hf), tokenizer=tok)
        fns["nnsight"] = lambda b: nnsight_read(lm, b, layer, stop=False)
        fns["nnsight_stop"] = lambda b: nnsight_read(lm, b, layer, stop=True)
    info = {"hf": hf, "attn_implementation": hf.config._attn_implementation, "n_layers": len(hf.model.layers)}
    return {n: fns[n] for n in names}, info


def nnsight_read(lm, batch: dict, layer: int, stop: bool) -> torch.Tensor:
    with lm.trace(batch["input_ids"], attention_mask=batch["attention_mask"]) as tracer:
        out = lm.model.layers[layer].output
        h = (out[0] if isinstance(out, tuple) else out).save()
        if stop:
            tracer.stop()
    return h


# --- same-function check ----------------------------------------------------------------------------------


def compare(ref: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> dict:
    """Deltas at non-pad positions (mask: (B, T) bool), in fp32."""
    r, d = ref.float(), (x.float() - ref.float()).abs()
    rest = mask.clone()
    rest[:, 0] = False
    return {"max_abs": d[mask].max().item(), "max_abs_excl_pos0": d[rest].max().item(),
            "max_abs_ref": r[mask].abs().max().item(),
            "allclose": bool((d[mask] <= ATOL + RTOL * r[mask].abs()).all())}


def check_same(fns: dict, info: dict, batches: list[dict], layer: int, strict: bool, fp32_refs: dict) -> dict:
    """lmlab vs HF hidden_states[L+1], and every method vs lmlab, on the first and the longest batch.

    strict (fp32): stop on any disagreement, and keep lmlab's activations in `fp32_refs`. Otherwise only
    record, and also compare every method with those fp32 activations (each one's own rounding error)."""
    result = {}
    for where, b in check_batches(batches).items():
        mask = b["attention_mask"].bool()
        with torch.inference_mode():
            ref = fns["lmlab"](b)
            got = {f"{n}_vs_lmlab": fn(b) for n, fn in fns.items() if n != "lmlab"}
            if layer < info["n_layers"] - 1:  # HF's last hidden state has the final norm applied
                hs = info["hf"](b["input_ids"], attention_mask=b["attention_mask"],
                                output_hidden_states=True).hidden_states
                got = {"lmlab_vs_hf_hidden_states": hs[layer + 1], **got}
        result[where] = {k: compare(ref, v, mask) for k, v in got.items()}
        if strict:
            fp32_refs[where] = ref
        elif where in fp32_refs:
            outs = {"lmlab": ref, **{k.removesuffix("_vs_lmlab"): v for k, v in got.items()
                                     if k.endswith("_vs_lmlab")}}
            result[where].update({f"{n}_vs_fp32_lmlab": compare(fp32_refs[where], v, mask)
                                  for n, v in outs.items()})
    bad = [f"{w}/{k}: max |delta| {c['max_abs']:.2e} (|ref| up to {c['max_abs_ref']:.1e})"
           for w, r in result.items() for k, c in r.items() if not c["allclose"]]
    if strict and bad:
        raise SystemExit("activations differ before timing (fp32, |delta| > 1e-3 + 1e-5*|ref|): "
                         + "; ".join(bad) + " - not timing different computations")
    return {**result, "tolerance": {"atol": ATOL, "rtol": RTOL, "enforced": strict}, "ok": not bad}


def check_batches(batches: list[dict]) -> dict[str, dict]:
    return {"first": batches[0], "longest": max(batches, key=lambda b: b["input_ids"].shape[1])}


# --- timing -----------------------------------------------------------------------------------------------


def time_methods(fns: dict, batches: list[dict], repeats: int) -> dict[str, list[float]]:
    """Seconds per (pass, batch) for every method; methods interleaved per batch, order rotated."""
    names = list(fns)
    secs = {n: [] for n in names}
    with torch.inference_mode():
        for n in names:  # warm-up (the check has run each method on these batches too)
            fns[n](check_batches(batches)["longest"])
        for r in range(repeats):
            for i, b in enumerate(batches):
                k = (i + r) % len(names)
                for n in names[k:] + names[:k]:
                    t = time.perf_counter()
                    fns[n](b)
                    secs[n].append(time.perf_counter() - t)
    return secs


def stats(xs: list[float]) -> dict:
    return {"median": statistics.median(xs), "min": min(xs), "max": max(xs)}


def summarise(secs: dict[str, list[float]], batches: list[dict], repeats: int) -> dict:
    """Aggregate and per-batch tokens/s per method; lmlab / method ratios (aggregate and paired)."""
    toks = [b["tokens"] for b in batches] * repeats
    out = {}
    for n, s in secs.items():
        out[n] = {"tokens_per_sec": sum(toks) / sum(s), "per_batch": stats([t / x for t, x in zip(toks, s)]),
                  "seconds": sum(s)}
    for n, s in secs.items():
        if n != "lmlab":
            out[n]["lmlab_ratio"] = out["lmlab"]["tokens_per_sec"] / out[n]["tokens_per_sec"]
            out[n]["paired_ratio"] = stats([b / a for a, b in zip(secs["lmlab"], s)])
    for label, group in (("default", DEFAULT_ANCHORS), ("best_effort", BEST_EFFORT_ANCHORS)):
        present = [n for n in group if n in out]
        if present:
            fast = max(present, key=lambda n: out[n]["tokens_per_sec"])
            ratio = out[fast]["lmlab_ratio"]
            out[f"vs_faster_{label}_anchor"] = {"anchor": fast, "ratio": ratio, "goal": GOAL,
                                                "met": ratio >= GOAL}
    return out


# --- driver -----------------------------------------------------------------------------------------------


def bench_dtype(dtype: str, batches: list[dict], args: argparse.Namespace, fp32_refs: dict) -> dict:
    t = time.perf_counter()
    fns, info = build_methods(DTYPES[dtype], args.layer, args.methods)
    row = {"dtype": dtype, "attn_implementation": info["attn_implementation"],
           "build_seconds": time.perf_counter() - t}
    row["check"] = check_same(fns, info, batches, args.layer, dtype == "fp32", fp32_refs)
    secs = time_methods(fns, batches, args.repeats)
    row["methods"] = summarise(secs, batches, args.repeats)
    row["seconds_per_batch"] = secs
    return row


def print_table(rows: list[dict]) -> None:
    head = f"{'dtype':<5} {'method':<13} {'tok/s':>7} {'per-batch median (min-max)':>28} " \
           f"{'lmlab/x':>8} {'paired (min-max)':>20}"
    print("\n" + head + "\n" + "-" * len(head))
    for r in rows:
        for n in r["methods"]:
            if n.startswith("vs_"):
                continue
            m, pb = r["methods"][n], r["methods"][n]["per_batch"]
            line = f"{r['dtype']:<5} {n:<13} {m['tokens_per_sec']:>7,.0f} " \
                   + f"{pb['median']:,.0f} ({pb['min']:,.0f}-{pb['max']:,.0f})".rjust(28)
            if "lmlab_ratio" in m:
                pr = m["paired_ratio"]
                paired = f"{pr['median']:.2f} ({pr['min']:.2f}-{pr['max']:.2f})"
                line += f" {m['lmlab_ratio']:>7.2f}x {paired:>20}"
            print(line)
        for label in ("default", "best_effort"):
            v = r["methods"].get(f"vs_faster_{label}_anchor")
            if v:
                print(f"{r['dtype']:<5} lmlab vs faster {label} anchor ({v['anchor']}): {v['ratio']:.2f}x "
                      f"(goal >= {GOAL:.0f}x: {'met' if v['met'] else 'not met'})")


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out) / "harvest_throughput.json"
    _, tok = load_causal_lm("smollm2")
    batches = make_batches(tok, args.tokens, args.seq, args.batch)
    real = sum(b["tokens"] for b in batches)
    padded = sum(b["input_ids"].numel() for b in batches)
    result = {"env": environment(args), "complete": False, "data": {
        "documents": sum(b["input_ids"].shape[0] for b in batches), "batches": len(batches),
        "real_tokens": real, "padded_tokens": padded,
        "batch_widths": [b["input_ids"].shape[1] for b in batches]},
        "rows": []}
    print(f"{result['data']['documents']} documents, {len(batches)} batches, {real:,} real tokens "
          f"({padded:,} with padding), layer {args.layer}", flush=True)
    fp32_refs = {}  # filled by the fp32 row (always run first), compared against by the others
    for dtype in args.dtypes:
        print(f"[{dtype}] ...", end=" ", flush=True)
        t = time.perf_counter()
        result["rows"].append(bench_dtype(dtype, batches, args, fp32_refs))
        print(f"done ({time.perf_counter() - t:.0f} s)", flush=True)
        write_json(out, result)  # partial results survive an interrupted run
        gc.collect()
    result["complete"] = True
    result["loadavg_1_5_15_at_end"] = os.getloadavg()  # > threads: other processes shared the cores
    write_json(out, result)
    print_table(result["rows"])
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

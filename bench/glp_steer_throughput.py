"""Steering throughput (issue 5): generated tokens/s of SmolLM2 with the last-position edit under each mode,
side by side in one process. Anchor: the paper's GLP post-processing (sdedit: sigma_s 0.4742, 10 NFEs per
steered token) and plain activation addition (no GLP). Ratios are reported against both.

usage: python bench/glp_steer_throughput.py --glp RUN_DIR [--prompts 32] [--tokens 20] [--repeats 2]
Writes bench/results/glp_steer_throughput.json.
"""

import argparse
import json
import os
import platform
from pathlib import Path

import torch


def main():
    from lmlab.glp import steering as S
    from lmlab.glp.load import glp_context
    from lmlab.io import write_json
    from lmlab.models import load_causal_lm

    ap = argparse.ArgumentParser()
    ap.add_argument("--glp", required=True)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="bench/results/glp_steer_throughput.json")
    a = ap.parse_args()
    load0 = os.getloadavg()  # > 2 on this 2-core machine: something else shared the cores
    glp, st = glp_context(a.glp, None)
    model, tok = load_causal_lm(st.model)
    w = torch.nn.functional.normalize(torch.randn(st.d_model, generator=torch.Generator().manual_seed(0)), dim=0)
    prompts = S.load_prompts(n=a.prompts)
    alpha = 0.5 * st.stats["mean_norm"]
    modes = ["plain", "sdedit", "x0", "delta"]
    secs = {m: [] for m in modes}
    S.generate(model, tok, prompts[:4], st.layer, S.Steer(w, alpha, "x0", glp), 4)  # warm-up
    for _ in range(a.repeats):  # interleaved, so machine load drifts hit every mode alike
        for m in modes:
            fn = S.Steer(w, alpha, m, glp)
            _, _, s = S.generate(model, tok, prompts, st.layer, fn, a.tokens, batch=a.prompts)
            secs[m].append(s)
    n_tok = a.prompts * a.tokens
    res = {m: {"tokens_per_s": n_tok / min(v), "seconds": v} for m, v in secs.items()}
    for m in modes:
        res[m]["vs_plain"] = res[m]["tokens_per_s"] / res["plain"]["tokens_per_s"]
        res[m]["vs_sdedit"] = res[m]["tokens_per_s"] / res["sdedit"]["tokens_per_s"]
    out = {"glp": a.glp, "glp_params": sum(p.numel() for p in glp.net.parameters()), "model": st.model,
           "layer": st.layer, "prompts": a.prompts, "new_tokens": a.tokens, "repeats": a.repeats,
           "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
           "note": "best of repeats", "modes": res,
           "cpus": os.cpu_count(), "loadavg_1_5_15_at_start": load0, "loadavg_1_5_15_at_end": os.getloadavg()}
    write_json(Path(a.out), out)
    print(json.dumps({m: round(r["tokens_per_s"], 1) for m, r in res.items()}))


if __name__ == "__main__":
    main()

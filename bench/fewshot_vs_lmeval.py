"""lmlab few-shot vs lm-evaluation-harness 0.4.13 (HF backend), same model object, same run.

SmolLM2-135M on a local multiple-choice JSONL task (lmlab's `domain_mc`: which source a passage of the embedded
corpus comes from, 3 choices of 3-5 tokens each), zero-shot, offline. Reports

- parity: lm-eval `acc` vs lmlab `acc`, lm-eval `acc_norm` vs lmlab `acc_char` (must be identical), plus lmlab's
  other normalisations (GPT-3's per-token, per-byte, unconditional) that lm-eval does not report;
- speed: conditional loglikelihood requests per second of lmlab's engine vs lm-eval's `HFLM` (built on the already
  loaded model object), both at the same batch size and thread count; and lm-eval driven through lmlab's `LM`
  adapter.

    .venv/bin/python bench/fewshot_vs_lmeval.py --limit 120 --batch-size 16 --threads 1

Writes bench/results/fewshot_vs_lmeval.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=120, help="examples of domain_mc (3 requests each)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for both sides (1: busy shared CPU)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fewshot_vs_lmeval.json")
    args = ap.parse_args()
    load0 = os.getloadavg()  # > 2 on this 2-core machine: something else shared the cores

    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    from lmlab.evals.fewshot.evaluate import evaluate
    from lmlab.evals.fewshot.lmeval_adapter import LmlabLM, write_lmeval_task
    from lmlab.evals.fewshot.runner import HFRunner
    from lmlab.evals.fewshot.tasks import get_task
    from lmlab.io import write_json
    from lmlab.models import load_causal_lm

    torch.set_num_threads(args.threads)
    model, tok = load_causal_lm("smollm2")
    task = get_task("domain_mc")
    tmp = Path(tempfile.mkdtemp(prefix="fewshot-bench-"))
    os.environ.setdefault("HF_DATASETS_CACHE", str(tmp / "hf-datasets"))
    name = write_lmeval_task(task, tmp, limit=args.limit)
    tm = TaskManager(include_path=str(tmp))
    n_req = 3 * args.limit

    def run_lmeval(lm):
        t = time.perf_counter()
        res = lm_eval.simple_evaluate(model=lm, tasks=[name], num_fewshot=0, task_manager=tm, bootstrap_iters=0,
                                      log_samples=False)["results"][name]
        return res, time.perf_counter() - t

    # lmlab engine (evaluate() also scores the 3 unconditional requests and builds prompts: counted in its time)
    runner = HFRunner(model, tok, batch_size=args.batch_size)
    t = time.perf_counter()
    ours, _ = evaluate(task, runner, 0, limit=args.limit)
    t_ours = time.perf_counter() - t
    theirs, t_theirs = run_lmeval(HFLM(pretrained=model, tokenizer=tok, batch_size=args.batch_size, device="cpu"))
    adapted, t_adapted = run_lmeval(LmlabLM(model, tok, batch_size=args.batch_size))

    result = {
        "model": "SmolLM2-135M-Instruct (embedded, fp32)", "task": "domain_mc (local JSONL, 3 choices)",
        "examples": args.limit, "conditional_requests": n_req, "batch_size": args.batch_size,
        "threads": args.threads, "lm_eval_version": lm_eval.__version__ if hasattr(lm_eval, "__version__") else "0.4.13",
        "parity": {"lmeval_acc": theirs["acc,none"], "lmlab_acc": ours["metrics"]["acc"],
                   "lmeval_acc_norm": theirs["acc_norm,none"], "lmlab_acc_char": ours["metrics"]["acc_char"],
                   "adapter_acc": adapted["acc,none"], "lmlab_acc_token_gpt3": ours["metrics"]["acc_token"],
                   "lmlab_acc_byte": ours["metrics"]["acc_byte"], "lmlab_acc_uncond": ours["metrics"]["acc_uncond"],
                   "acc_identical": theirs["acc,none"] == ours["metrics"]["acc"],
                   "acc_norm_identical": theirs["acc_norm,none"] == ours["metrics"]["acc_char"]},
        "seconds": {"lmlab": t_ours, "lmeval_hf": t_theirs, "lmeval_via_lmlab_adapter": t_adapted},
        "requests_per_s": {"lmlab": n_req / t_ours, "lmeval_hf": n_req / t_theirs,
                           "lmeval_via_lmlab_adapter": n_req / t_adapted},
        "speedup_lmlab_vs_lmeval_hf": t_theirs / t_ours,
        "lmlab_forward_passes": ours["forward_passes"],
        "machine": f"{os.cpu_count()} CPU cores, torch CPU", "loadavg_1_5_15_at_start": load0,
        "loadavg_1_5_15_at_end": os.getloadavg(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    write_json(args.out, result)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

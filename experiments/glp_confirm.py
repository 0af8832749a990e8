"""Issue 19 part 1 at full size: train one GLP recipe, score it, and record the run's cost beside its numbers.

Runs, in order, each skipped when its output is already there (a killed run resumes: the trainer continues from
its last checkpoint with `--resume`, the scores are written whole or not at all):

    lmlab glp train --store STORE --out RUN --preset PRESET --set ... [--resume]
    lmlab glp eval --glp RUN --store STORE --n N --steps STEPS --json               -> OUT/eval.json
    lmlab glp delta-lm --glp RUN --store STORE --n-docs D --sigma-start S           -> OUT/delta_lm.json

then writes OUT/run.json: the training wall time and CPU share ((user + system CPU seconds of the trainer) /
wall), the load average before training, after it and at the end (a wall time taken beside other CPU work is
not a result: docs/benchmarks.md), the CPU (model, torch's capability: bf16 is native only with AVX512-BF16 /
AMX, see lmlab.dist.native_bf16), the trainer's summary and the three commands; and copies RUN's resolved
config.json and metrics.jsonl (the loss curve) to OUT. Machine paths are written as STORE and RUN. If training
was killed and resumed, the wall time is that of the last (resumed) part and run.json says so.

    python experiments/glp_confirm.py --store STORE --run RUN --out docs/results/glp_confirm/ema8 \\
        --set 'sigma="logit_normal"' --set lr=0.001 --set max_steps=7422 --set adam_beta2=0.95 --set ema=0.998
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--store", required=True, help="the activation store (lmlab acts harvest)")
    p.add_argument("--run", required=True, help="the GLP run directory (created, or resumed; big, not committed)")
    p.add_argument("--out", required=True, help="where eval.json, delta_lm.json, run.json, config.json go")
    p.add_argument("--preset", default="smollm2-d3", help="glp train preset")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="a glp train --set override")
    p.add_argument("--n", type=int, default=4000, help="glp eval: generated and real activations compared")
    p.add_argument("--steps", default="20,100", help="glp eval: sampler step counts")
    p.add_argument("--n-docs", type=int, default=200, help="glp delta-lm: validation documents")
    p.add_argument("--sigma-start", type=float, default=0.4742, help="glp delta-lm: noise level denoised from")
    p.add_argument("--dry-run", action="store_true", help="print the three commands and exit")
    return p.parse_args(argv)


def commands(args) -> dict[str, list[str]]:
    """The lmlab command lines (without the interpreter), in run order."""
    train = ["glp", "train", "--store", args.store, "--out", args.run, "--preset", args.preset]
    for s in args.overrides:
        train += ["--set", s]
    return {"train": train,
            "eval": ["glp", "eval", "--glp", args.run, "--store", args.store, "--n", str(args.n), "--steps",
                     args.steps, "--json"],
            "delta_lm": ["glp", "delta-lm", "--glp", args.run, "--store", args.store, "--n-docs", str(args.n_docs),
                         "--sigma-start", str(args.sigma_start)]}  # delta-lm always prints one JSON line


def shown(cmd: list[str]) -> str:
    return "lmlab " + shlex.join(cmd)


def lmlab(cmd: list[str], capture: bool = False) -> str:
    """Run `python -m lmlab CMD` (this interpreter's lmlab); exit with one line if it fails (its own error line
    is above)."""
    proc = subprocess.run([sys.executable, "-m", "lmlab", *cmd], stdout=subprocess.PIPE if capture else None,
                          text=True)
    if proc.returncode != 0:
        sys.exit(f"error: `{shown(cmd)}` exited with {proc.returncode} — see its message above; rerun this "
                 "command to continue from where it stopped")
    return proc.stdout or ""


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    import torch

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "") if Path("/proc/cpuinfo").is_file() else ""
    return {"cpu_model": model, "cpus": os.cpu_count(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "torch": torch.__version__}


def train(args, cmd: list[str]) -> dict | None:
    """Train (or resume) RUN; None when it already finished (summary.json is written last)."""
    run = Path(args.run)
    if (run / "summary.json").is_file():
        return None
    resumed = (run / "config.json").is_file()
    cmd = cmd + (["--resume"] if resumed else [])
    start, t0 = loadavg(), time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    lmlab(cmd)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"train_wall_s": round(wall, 1), "train_cpu_percent": round(100 * cpu / wall),
            "resumed": resumed, "loadavg_start": start, "loadavg_train_end": loadavg(), "machine": machine()}


def score(cmd: list[str], out: Path, paths: dict) -> None:
    """One scoring command's JSON (its last stdout line) to `out`, unless already there."""
    from lmlab.io import with_placeholders, write_json

    if not out.is_file():
        write_json(out, with_placeholders(json.loads(lmlab(cmd, capture=True).strip().splitlines()[-1]), paths))


def copy_run_files(run: Path, out: Path, paths: dict) -> None:
    """RUN's resolved config.json and its metrics.jsonl (the loss curve) to OUT, machine paths as placeholders."""
    from lmlab.io import read_json, read_jsonl, with_placeholders, write_json, write_text

    write_json(out / "config.json", with_placeholders(read_json(run / "config.json"), paths))
    rows = with_placeholders(list(read_jsonl(run / "metrics.jsonl")), paths)
    write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def main(argv=None) -> int:
    from lmlab.io import read_json, with_placeholders, write_json

    args = parse_args(argv)
    cmds = commands(args)
    if args.dry_run:
        print("\n".join(shown(c) for c in cmds.values()))
        return 0
    if not Path(args.store, "manifest.json").is_file():
        sys.exit(f"error: {args.store} is not an activation store (no manifest.json) — harvest one with "
                 "`lmlab acts harvest --model smollm2 --layer 15 --tokens 1000000 --seq-len 512 --out STORE`")
    out, run = Path(args.out), Path(args.run)
    out.mkdir(parents=True, exist_ok=True)
    paths = {str(Path(args.store).resolve()): "STORE", args.store: "STORE", str(run.resolve()): "RUN",
             args.run: "RUN"}
    run_json = out / "run.json"
    timing = train(args, cmds["train"])
    if timing is None:  # trained by an earlier invocation: keep what it recorded
        timing = read_json(run_json)["training"] if run_json.is_file() else {"note": "trained before this script"}
    else:  # recorded now, before scoring, so a kill during scoring does not lose it
        write_json(run_json, with_placeholders({"training": timing}, paths))
    score(cmds["eval"], out / "eval.json", paths)
    score(cmds["delta_lm"], out / "delta_lm.json", paths)
    copy_run_files(run, out, paths)
    record = {"training": timing, "loadavg_end": loadavg(), "summary": read_json(run / "summary.json"),
              "commands": [shown(c) for c in cmds.values()]}
    write_json(run_json, with_placeholders(record, paths))
    print(json.dumps(with_placeholders(record, paths)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

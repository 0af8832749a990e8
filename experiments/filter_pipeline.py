"""Token-level filtering end to end on the embedded corpus (issue 16), each step skipped when its output exists,
so an interrupted run (or a new machine with WORK copied) continues where it stopped:

    python experiments/filter_pipeline.py --sae SAE --store STORE --work WORK --out docs/results/filtering [--steps ...]

  data      lmlab data prepare --corpus embedded-pages --vocab-size 4096            -> WORK/data
  labels    lmlab sae label --apply-to embedded-pages --tokenizer WORK/data          -> WORK/labels
  bilm      two demo-preset LMs on WORK/data, left-to-right and reversed             -> WORK/bilm_{fwd,bwd}
  classify  lmlab filter classifier (+ the SmolLM2 teacher probe)                   -> WORK/cls, OUT/classifier.json
  label     lmlab filter label WORK/data                                           -> WORK/data/train.side
  sweep     lmlab filter sweep (4 series x sizes)                                   -> WORK/sweep, OUT/sweep.json
  slowdown  lmlab filter slowdown                                                   -> OUT/slowdown.{json,png}

Commands are run as subprocesses of the real CLI, one at a time; each step's wall time and the load average
before and after it go to OUT/steps.json. Committed outputs name no path of this machine (WORK, SAE, STORE).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

STEPS = ("data", "labels", "bilm", "classify", "label", "sweep", "slowdown")


def commands(a, w: Path, out: Path) -> dict[str, tuple[Path, list[list[str]]]]:
    """step -> (the file whose presence marks it done, the lmlab commands that make it)."""
    data = w / "data"
    sweep_set = [x for s in a.sweep_set for x in ("--set", s)]
    return {
        "data": (data / "meta.json", [["data", "prepare", "--corpus", "embedded-pages", "--out", str(data),
                                       "--vocab-size", "4096", "--max-val-tokens", "100000"]]),
        "labels": (w / "labels" / "labels.json", [["sae", "label", "--sae", a.sae, "--store", a.store, "--out",
                                                   str(w / "labels"), "--docs", "100", "--apply-to", "embedded-pages",
                                                   "--apply-docs", str(a.label_docs), "--apply-seq-len", "512",
                                                   "--tokenizer", str(data)]]),
        "bilm": (w / "bilm_bwd" / "summary.json",
                 [["lm", "train", "--data", str(data), "--out", str(w / f"bilm_{h}"), "--preset", "demo", "--set",
                   f"reverse={r}", "--no-progress", *(["--resume"] if (w / f"bilm_{h}" / "ckpt").exists() else [])]
                  for h, r in (("fwd", "false"), ("bwd", "true")) if not (w / f"bilm_{h}" / "summary.json").is_file()]),
        "classify": (w / "cls" / "teacher.json", [["filter", "classifier", "--labels", str(w / "labels"), "--fwd",
                                                   str(w / "bilm_fwd"), "--bwd", str(w / "bilm_bwd"), "--out",
                                                   str(w / "cls"), "--teacher", "smollm2", "--teacher-layer", "15"]]),
        "label": (data / "train.label.json", [["filter", "label", "--classifier", str(w / "cls"), "--data",
                                               str(data), "--no-progress"]]),
        "sweep": (w / "sweep" / "sweep.json", [["filter", "sweep", "--data", str(data), "--out", str(w / "sweep"),
                                                "--no-progress", *sweep_set]]),
        "slowdown": (out / "slowdown.json", [["filter", "slowdown", "--sweep", str(w / "sweep"), "--out", str(out)]]),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sae", required=True)
    ap.add_argument("--store", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--label-docs", type=int, default=800)
    ap.add_argument("--sweep-set", action="append", default=[], help="a FilterSweepConfig override (repeatable)")
    ap.add_argument("--steps", default=",".join(STEPS), help="comma-separated subset of " + ",".join(STEPS))
    a = ap.parse_args(argv)
    w, out = Path(a.work), Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    log_path = out / "steps.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    for step, (done, cmds) in commands(a, w, out).items():
        if step not in a.steps.split(",") or done.is_file():
            continue
        load0, t0 = os.getloadavg(), time.perf_counter()
        for cmd in cmds:
            print(f"[{step}] lmlab {' '.join(cmd)}", flush=True)
            subprocess.run([sys.executable, "-m", "lmlab", *cmd], check=True)
        log[step] = {"seconds": round(time.perf_counter() - t0, 1), "loadavg_start": load0,
                     "loadavg_end": os.getloadavg(), "commands": [" ".join(_anon(c, a, w, out)) for c in cmds]}
        log_path.write_text(json.dumps(log, indent=1) + "\n")
    _publish(a, w, out)
    return 0


def _anon(cmd: list[str], a, w: Path, out: Path) -> list[str]:
    """The command as committed: this machine's paths replaced by WORK / SAE / STORE / OUT."""
    subs = [(str(w), "WORK"), (a.sae, "SAE"), (a.store, "STORE"), (str(out), "OUT")]
    res = []
    for c in cmd:
        for old, new in subs:
            c = c.replace(old, new)
        res.append(c)
    return res


def _publish(a, w: Path, out: Path) -> None:
    """Copy the small result files into OUT with this machine's paths replaced."""
    for src, name in ((w / "cls" / "classifier.json", "classifier.json"), (w / "cls" / "teacher.json", "teacher.json"),
                      (w / "labels" / "labels.json", "page_labels.json"),
                      (w / "data" / "train.label.json", "corpus_label.json"), (w / "sweep" / "sweep.json", "sweep.json")):
        if src.is_file():
            text = src.read_text()
            for old, new in ((str(w), "WORK"), (a.sae, "SAE"), (a.store, "STORE")):
                text = text.replace(old, new)
            (out / name).write_text(text)


if __name__ == "__main__":
    raise SystemExit(main())

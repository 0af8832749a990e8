#!/usr/bin/env bash
# CPU scaling sweep for docs/results.md "Scaling laws": 7 sizes (8x1 ... 32x2), 10 tokens/param (N_total),
# vocab-1024 BPE on the embedded corpus. Resumable: re-run the same command after a kill.
# Usage: bash experiments/scaling_sweep.sh [SWEEP_DIR]   (then: cp SWEEP_DIR/runs.csv docs/results/scaling/runs_cpu.csv;
#        .venv/bin/python experiments/scaling_analyze.py)
set -euo pipefail
OUT=${1:-/tmp/lmlab-scaling-sweep}
PY=${PY:-.venv/bin/python}
DATA=$($PY -c "
from lmlab.data.prepare import DataConfig, prepare_dataset
from lmlab.data.corpus import cache_root
print(prepare_dataset(DataConfig(vocab_size=1024, tokenizer_train_chars=4_000_000, max_train_tokens=20_000_000,
                                 max_val_tokens=40_000), cache_root() / 'datasets' / 'scaling-bpe1024', progress=False))")
$PY -m lmlab scaling sweep --out "$OUT" --data "$DATA" --tokens-per-param 10 \
    --sizes 8x1,12x1,16x1,20x1,24x1,32x1,32x2 --no-progress

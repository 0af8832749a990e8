#!/usr/bin/env bash
# The filter sweep of experiments/filter_pipeline.py at larger sizes on one GPU: the same labelled dataset (copy
# WORK/data from the CPU pipeline: train.side, train.docflags.npy, train.label.json), the same four series and
# budget rule, sizes 64x2 ... 384x6 (~3 decades of compute), 20 tokens per non-embedding parameter (the corpus's
# ~12M training tokens are then repeated for the largest sizes: the run's JSON records processed tokens), bf16.
# Then the slowdown analysis. Usage: bash experiments/filter_sweep_gpu.sh WORK/data OUT_DIR
set -euo pipefail
DATA=$1; OUT_DIR=$2; PY=${PY:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR"
$PY -m lmlab filter sweep --data "$DATA" --out "$OUT_DIR/sweep" --no-progress \
    --set 'sizes=["64x2","96x3","128x4","192x4","256x6","384x6"]' --set device='"cuda"' --set dtype='"bf16"' \
    --set seq_len=256 --set batch_size=64 2>&1 | grep -v "^GPT:" | tee "$OUT_DIR/sweep_gpu.log"
$PY -m lmlab filter slowdown --sweep "$OUT_DIR/sweep" --out "$OUT_DIR"

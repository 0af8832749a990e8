#!/usr/bin/env bash
# The same sweep recipe as experiments/scaling_sweep.sh (10 tokens/param, vocab-1024 BPE of the embedded corpus,
# seq 128, batch 16, size-scaled LR/warmup) on one GPU, extended to 10 sizes (12x1 ... 128x4, ~3.5 decades of
# compute), plus a DDP check: a 2-process torchrun (gloo, CPU) sweep point must give the 1-process losses.
# Usage: bash experiments/scaling_sweep_gpu.sh DATASET_DIR OUT_DIR
set -euo pipefail
DATA=$1; OUT_DIR=$2; PY=${PY:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT_DIR"
SIZES=12x1,16x1,20x1,24x1,32x1,32x2,48x2,64x2,96x3,128x4
$PY -m lmlab scaling sweep --out /tmp/gsweep --data "$DATA" --tokens-per-param 10 --sizes $SIZES \
    --set device=cuda --no-progress 2>&1 | grep -v "^GPT:" | tee "$OUT_DIR/sweep_gpu.log"
cp /tmp/gsweep/runs.csv "$OUT_DIR/runs_gpu.csv"
cp /tmp/gsweep/sweep_config.json "$OUT_DIR/sweep_config_gpu.json"
# DDP: the smallest point under torchrun (2 ranks, gloo on CPU) vs 1 process
for W in 1 2; do
  $PY -m torch.distributed.run --standalone --nproc_per_node $W -m lmlab scaling sweep --out /tmp/ddp$W \
      --data "$DATA" --sizes 12x1 --set device=cpu --no-progress > "$OUT_DIR/ddp$W.log" 2>&1 || tail -20 "$OUT_DIR/ddp$W.log"
  cp /tmp/ddp$W/runs.csv "$OUT_DIR/runs_ddp$W.csv"
done

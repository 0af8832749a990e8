#!/usr/bin/env bash
# The one prepared GPU run (device tool, ~6 min on one H200): every GPU figure in docs/benchmarks.md.
#   bash bench/gpu_suite.sh            # writes $OUT (default bench/results/gpu) *.json + gpu_suite.log
# Uses the machine's own torch/transformers (PYTHONPATH=src, no install); synthetic data only, no model hub.
set -uo pipefail
export PYTHONPATH="$PWD/src" PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
OUT="${OUT:-bench/results/gpu}"
mkdir -p "$OUT"
PY="${PY:-python3}"
{
  date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  $PY -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())"
  # 1. GLP, the paper's glp-llama1b-d3 size (d_in 2048, 453M params), batch 4096: lmlab vs the paper's recipe
  timeout 180 $PY bench/glp_train_throughput.py --device cuda --preset paper-llama1b-d3 --depth 3 --batch 4096 --rows 160000 \
      --steps 10 --repeats 3 --name glp_train_throughput_h200 --out "$OUT"; echo "glp rc=$?"
  # 2. LM training, ~91M-param GPT (d768-L12, seq 1024, batch 16), bf16, eager and torch.compile: lmlab vs HF
  timeout 190 $PY bench/train_throughput.py --device cuda --configs d768-L12 --dtypes bf16 --compile \
      --steps 10 --warmup 3 --repeats 3 --out "$OUT"; echo "lm rc=$?"
  date -u
} 2>&1 | tee "$OUT/gpu_suite.log"

#!/usr/bin/env bash
# One GPU session: install the carried wheels, run the default job on the GPU end to end
# (trainer=gpu, bf16-mixed), then the throughput table. Results land in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
pip install -q --no-index --no-deps .device/wheels/*.whl 2>&1 | tail -2
pip install -q --no-index --no-deps --no-build-isolation .device/wheels/antlr4*.tar.gz 2>&1 | tail -2
pip install -q --no-index --no-deps --no-build-isolation -e . 2>&1 | tail -2
export FTLAB_DATA_DIR=$PWD/.device/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python -c "import torch, timm, peft, transformers, lightning; print(torch.__version__, timm.__version__, peft.__version__, transformers.__version__, lightning.__version__)" | tee -a "$OUT/gpu.txt"
start=$(date +%s)
python -m ftlab.train trainer=gpu logger=csv print_config=false 2>&1 | grep -v -i warn | tail -16
echo "default job on GPU: $(( $(date +%s) - start )) s wall" | tee -a "$OUT/gpu.txt"
cp logs/train/runs/*/results.json "$OUT/default_job_gpu.json" 2>/dev/null
python experiments/benchmarks/gpu_throughput.py --out "$OUT/throughput.json" 2>&1 | grep -v -i warn

#!/usr/bin/env bash
# One GPU session, in order of what matters most, each stage with its own time limit so a
# slow one cannot take the others' results: the throughput/memory/MFU table, ftlab vs a
# plain loop on the GPU, the non-finite-loss tests on CUDA (where the check is deferred),
# then the default job end to end on trainer=gpu. STAGES picks some. Results in $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
# hydra-core, omegaconf, antlr4 and submitit are not on the machine: carried in .device/
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
  .device/wheels/hydra_core*.whl .device/wheels/omegaconf*.whl .device/wheels/submitit*.whl \
  .device/wheels/hydra_submitit*.whl .device/wheels/antlr4*.tar.gz 2>&1 | grep -v "as the 'root'"
export PYTHONPATH=/tmp/site:$PWD/src:$PWD FTLAB_DATA_DIR=$PWD/.device/data HF_HUB_OFFLINE=1
export PYTHONUNBUFFERED=1
python3 -c "import hydra, omegaconf, ftlab" || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python -c "import torch, timm, peft, transformers, lightning; print(torch.__version__, timm.__version__, peft.__version__, transformers.__version__, lightning.__version__)" | tee -a "$OUT/gpu.txt"
stage() {  # stage SECONDS NAME COMMAND...
  local limit=$1 name=$2; shift 2
  local start=$(date +%s)
  timeout "$limit" "$@" 2>&1 | grep -v -i -E "warn|tip:|litlogger" | tail -24
  echo "$name: rc ${PIPESTATUS[0]}, $(( $(date +%s) - start )) s wall" | tee -a "$OUT/gpu.txt"
}
stages=${STAGES:-throughput parity nonfinite job}
for s in $stages; do case $s in
  throughput) stage "${THROUGHPUT_S:-250}" throughput \
    python3 experiments/benchmarks/gpu_throughput.py --out "$OUT/throughput.json" ;;
  parity) stage "${PARITY_S:-200}" parity \
    python3 experiments/benchmarks/parity.py --gpu --repeats 2 --out "$OUT/parity_gpu" ;;
  nonfinite) stage "${NONFINITE_S:-90}" nonfinite_on_cuda \
    python3 -m pytest -q -p no:cacheprovider tests/test_resume.py -k non_finite ;;
  job) stage "${JOB_S:-70}" default_job \
    python3 -m ftlab.train trainer=gpu logger=csv print_config=false ;;
esac; done
cp logs/train/runs/*/results.json "$OUT/default_job_gpu.json" 2>/dev/null
true

#!/usr/bin/env bash
# The few-shot study on one GPU (bf16-mixed), with carried wheels and data (.device/).
set -uo pipefail
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
python -m pip install -q --no-index --no-deps .device/wheels/*.whl 2>&1 | grep -v "Running pip"
python -m pip install -q --no-index --no-deps --no-build-isolation .device/wheels/antlr4*.tar.gz 2>&1 | grep -v "Running pip"
export PYTHONPATH=$PWD/src FTLAB_DATA_DIR=$PWD/.device/data HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
start=$(date +%s)
timeout "${BUDGET_S:-400}" python -m ftlab.train -m experiment=few_shot trainer=gpu logger=csv \
  print_config=false "hydra.sweep.dir=logs/studies/few_shot" 2>&1 \
  | grep -E "^ftlab|Error" | tail -20
echo "few_shot wall: $(( $(date +%s) - start )) s" | tee "$OUT/wall.txt"
nvidia-smi --query-gpu=name --format=csv,noheader >> "$OUT/wall.txt"
tar czf "$OUT/few_shot_results.tgz" $(find logs/studies/few_shot -name results.json -o -name "*.md" -o -name "*.png" -o -name "*.csv" -o -name multirun.yaml | grep -v "/csv/")

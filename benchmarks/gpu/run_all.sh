#!/usr/bin/env bash
# Runs every GPU benchmark of benchmarks/gpu/ in one call on the lent machine, each under its own
# time limit, writing <name>.json and one log into $OUT (or the folder given as $1).
# Data: Fashion-MNIST IDX files in .devcarry/fashion-mnist, float16 20NG MiniLM features in
# .devcarry/features (git-ignored; the device tool carries them).
set -u
out=${1:-${OUT:-gpu_results}}; mkdir -p "$out"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1
log="$out/gpu_log.txt"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >>"$log" 2>&1
run() { local name=$1 limit=$2; shift 2; echo "=== $name (limit ${limit}s) $(date -u +%T)" >>"$log"
  timeout "$limit" python3 "benchmarks/gpu/$name.py" --out "$out/$name.json" "$@" >>"$log" 2>&1
  echo "=== $name rc=$? $(date -u +%T)" >>"$log"; }
run losses 60 --fashion-dir .devcarry/fashion-mnist --budget 40
run clustering 80 --features-dir .devcarry/features --budget 60
run tsne 140 --fashion-dir .devcarry/fashion-mnist --budget 120
run pretrain 270 --fashion-dir .devcarry/fashion-mnist --budget-s 245
tail -n 5 "$log"

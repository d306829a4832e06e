#!/usr/bin/env bash
# The clustering benchmark on the lent GPU machine in one call: EfficientNet features of all
# 70,000 Fashion-MNIST images extracted there, then every method x data set x seed
# (clustering_sweep.py with .devcarry/grids/bench.json) beside the ablations on 20 Newsgroups
# (grids/ablation.json), each pool under its own time limit; spectral clustering on the three
# smaller sets. Results: $OUT/bench.jsonl, ablation.jsonl, spectral.jsonl, log.txt.
set -u
out=${OUT:-gpu_results}; mkdir -p "$out"
export PYTHONPATH=$PWD/src:$PWD/.devcarry/effnet PYTHONUNBUFFERED=1
S=benchmarks/gpu/clustering_sweep.py; D=.devcarry/bench; G=.devcarry/grids
python3 benchmarks/gpu/extract_fashion.py --fashion-dir .devcarry/fashion-mnist --out $D >"$out/log.txt" 2>&1
timeout 340 python3 $S --data-dir $D --grid $G/bench.json --seeds 0,1,2 --workers 9 --threads 1 --budget 200 \
  --out "$out/bench.jsonl" >>"$out/log.txt" 2>&1 &
timeout 340 python3 $S --data-dir $D --datasets 20newsgroups --grid $G/ablation.json --seeds 0,1 --workers 5 \
  --threads 1 --budget 230 --no-kmeans --out "$out/ablation.jsonl" >>"$out/log.txt" 2>&1 &
timeout 200 python3 $S --data-dir $D --datasets 20newsgroups,digits,pbmc68k --grid $G/spectral.json --seeds 0,1,2 \
  --workers 2 --threads 1 --budget 150 --no-kmeans --out "$out/spectral.jsonl" >>"$out/log.txt" 2>&1 &
wait
grep -v -i warn "$out/log.txt" | tail -n 8; wc -l "$out"/*.jsonl

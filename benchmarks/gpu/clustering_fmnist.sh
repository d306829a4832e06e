#!/usr/bin/env bash
# Fashion-MNIST (all 70,000 images) clustering on the lent GPU machine in one call: EfficientNet-Lite0
# features extracted there, then I-Con (library defaults), SCAN, TEMI and plain I-Con for seeds 0-2
# (clustering_sweep.py with .devcarry/grids/final_fm.json). BLAS/OpenMP threads are capped per worker
# (5 workers x 3 threads on 16 cores): uncapped, scikit-learn's k-means in each worker took all cores
# and the pool stalled. k-means itself is run on the CPU machine (bench_clustering.py).
set -u
out=${OUT:-gpu_results}; mkdir -p "$out"
export PYTHONPATH=$PWD/src:$PWD/.devcarry/effnet PYTHONUNBUFFERED=1 OMP_NUM_THREADS=3 MKL_NUM_THREADS=3 OPENBLAS_NUM_THREADS=3
D=.devcarry/fm70
python3 benchmarks/gpu/extract_fashion.py --fashion-dir .devcarry/fashion-mnist --out $D >"$out/log.txt" 2>&1
timeout "${LIMIT:-400}" python3 benchmarks/gpu/clustering_sweep.py --data-dir $D --datasets fashion-mnist \
  --grid .devcarry/grids/final_fm.json --seeds 0,1,2 --workers 5 --threads 3 --budget 300 --no-kmeans \
  --out "$out/fm70.jsonl" >>"$out/log.txt" 2>&1
grep -v -i warn "$out/log.txt" | tail -n 5; wc -l "$out"/*.jsonl

"""EfficientNet-Lite0 features (64 px) of all 70,000 Fashion-MNIST images on the device.

    PYTHONPATH=src:.devcarry/effnet python benchmarks/gpu/extract_fashion.py \
        --fashion-dir .devcarry/fashion-mnist --out .devcarry/sweep --device cuda

The same encoder and preprocessing as ``iconlearn.data.features.extract_features`` (which caches
these on the CPU machine); written as float16 <out>/fashion-mnist-X.npy and labels -y.npy, the
format ``clustering_sweep.py`` reads.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from iconlearn.data.datasets import load_fashion_mnist
from iconlearn.data.features import EfficientNetEncoder


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fashion-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--size", type=int, default=64)
    args = ap.parse_args(argv)
    t = time.perf_counter()
    ds = load_fashion_mnist(root=Path(args.fashion_dir))
    X = EfficientNetEncoder(size=args.size, batch_size=1024, device=args.device)(ds.X, verbose=False)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "fashion-mnist-X.npy", X.astype(np.float16))
    np.save(out / "fashion-mnist-y.npy", ds.y.astype(np.int16))
    print(f"fashion-mnist {X.shape} in {time.perf_counter() - t:.1f}s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

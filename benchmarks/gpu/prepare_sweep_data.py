"""Writes the float16 features and labels that ``clustering_sweep.py`` reads, from the cache.

    python benchmarks/gpu/prepare_sweep_data.py --out .devcarry/sweep --fashion-subset 12000

Fashion-MNIST's 70,000 x 1,280 EfficientNet features do not fit the device's 64 MiB carry in
float16, so a stratified random subset (seed 0) is written; the others are written whole.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from iconlearn.data.features import extract_features

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench_clustering import SPECS  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--datasets", default="20newsgroups,fashion-mnist,digits,pbmc68k,reuters-r52")
    ap.add_argument("--fashion-subset", type=int, default=12000)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.datasets.split(","):
        enc, kw = SPECS[name]
        X, y = extract_features(name, enc, **kw)
        if name == "fashion-mnist" and args.fashion_subset < len(X):
            from sklearn.model_selection import train_test_split

            keep, _ = train_test_split(np.arange(len(X)), train_size=args.fashion_subset, stratify=y, random_state=0)
            X, y = X[np.sort(keep)], y[np.sort(keep)]
        np.save(out / f"{name}-X.npy", X.astype(np.float16))
        np.save(out / f"{name}-y.npy", y.astype(np.int16))
        print(name, X.shape, f"{X.astype(np.float16).nbytes / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

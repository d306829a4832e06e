"""I-Con on raw tabular features against k-means on standardised ones: scikit-learn's wine,
breast_cancer and iris (columns in different units; imbalanced classes). I-Con and the harness's
baselines get the features as loaded (their ``normalize="auto"`` decides); the extra row
"k-means (standardised by hand)" is what a user who standardises first would get.

    python benchmarks/bench_clustering_tabular.py --out benchmarks/results/clustering_tabular
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn import datasets
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from iconlearn.report import compare, default_methods, markdown_table

LOADERS = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer, "iris": datasets.load_iris}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="wine,breast_cancer,iris")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="benchmarks/results/clustering_tabular")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.datasets.split(","):
        X, y = LOADERS[name](return_X_y=True)
        X = X.astype(np.float32)
        k = len(np.unique(y))
        methods = default_methods(k, device="cpu")
        methods["k-means (standardised by hand)"] = lambda seed: _StandardisedKMeans(k, seed)
        res = compare(X, y, methods, seeds=seeds)
        title = f"### {name}, {len(X)} points, {X.shape[1]} raw features, {k} classes (sizes {np.bincount(y).tolist()}), seeds {args.seeds}"
        table = markdown_table(res["summary"])
        (out / f"{name}.md").write_text(title + "\n\n" + table + "\n")
        (out / f"{name}.json").write_text(json.dumps({
            "dataset": name, "n": len(X), "seeds": seeds, "runs": res["runs"], "summary": res["summary"],
            "machine": platform.platform(), "threads": args.threads, "command": " ".join(sys.argv),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}, indent=1, default=float))
        print(title + "\n\n" + table, flush=True)
    return 0


class _StandardisedKMeans:
    """scikit-learn's KMeans (10 inits) after StandardScaler."""

    def __init__(self, k, seed):
        self.k, self.seed = k, seed

    def fit_predict(self, X, y=None):
        return KMeans(self.k, n_init=10, random_state=self.seed).fit_predict(StandardScaler().fit_transform(X))


if __name__ == "__main__":
    sys.exit(main())

"""I-Con clustering vs k-means, spectral, SCAN, TEMI and plain I-Con on frozen features of real
data (docs/data.md): same features, same metrics, several seeds, mean +/- std and training time.

    python benchmarks/bench_clustering.py --datasets 20newsgroups,digits,pbmc68k,reuters-r52 \
        --seeds 0,1,2 --out benchmarks/results/clustering

Features come from the on-disk cache (iconlearn.data.features); a dataset whose features are
not cached yet is extracted first (MiniLM / EfficientNet-Lite0 take minutes on 2 cores).
scikit-learn's wine, breast_cancer and iris run on their raw features, with an extra row for
k-means on features standardised by hand.
Writes <out>/<dataset>.md / .json per dataset and prints the tables.
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

from iconlearn.data.features import extract_features
from iconlearn.estimators.clustering import IConClustering
from iconlearn.report import compare, default_methods, markdown_table

# dataset -> (encoder, extra extract_features kwargs)
SPECS = {
    "20newsgroups": ("minilm", {}),
    "fashion-mnist": ("efficientnet-lite0", {"size": 64}),
    "digits": ("pixels", {}),
    "pbmc68k": ("pca", {}),
    "reuters-r52": ("minilm", {}),
    "reuters-r8": ("minilm", {}),
    "mnist5k": ("efficientnet-lite0", {"size": 64}),
}
# scikit-learn's tabular sets, features as loaded (columns in different units); their tables add
# the row a user who standardises by hand would get from k-means
TABULAR = {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer, "iris": datasets.load_iris}


class StandardisedKMeans:
    """scikit-learn's KMeans (10 inits) after StandardScaler: the by-hand baseline for tabular data."""

    def __init__(self, k: int, seed: int):
        self.k, self.seed = k, seed

    def fit_predict(self, X, y=None):
        return KMeans(self.k, n_init=10, random_state=self.seed).fit_predict(StandardScaler().fit_transform(X))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="20newsgroups,fashion-mnist,digits,pbmc68k,reuters-r52")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--methods", default=None, help="comma-separated subset (default: all)")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--variant", action="append", default=[], metavar='JSON',
                    help='an extra I-Con row with these parameters changed, e.g. \'{"walks": 3}\' (repeatable)')
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/clustering")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [int(s) for s in args.seeds.split(",")]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    include = [m.strip() for m in args.methods.split(",")] if args.methods else None
    for name in args.datasets.split(","):
        if name not in SPECS and name not in TABULAR:
            raise SystemExit(f"unknown dataset {name!r}; choose from {sorted(SPECS) + sorted(TABULAR)}")
        t0 = time.perf_counter()
        if name in TABULAR:
            enc, (X, y) = "raw", TABULAR[name](return_X_y=True)
            X = X.astype(np.float32)
        else:
            enc, kw = SPECS[name]
            X, y = extract_features(name, enc, **kw)
        k = len(np.unique(y))
        counts = np.bincount(y)
        print(f"\n{name}: {X.shape} {enc} features ({time.perf_counter() - t0:.1f}s to load), {k} classes, "
              f"largest/smallest class {counts.max()}/{counts.min()}", flush=True)
        methods = default_methods(k, args.epochs, "cpu", include)
        if name in TABULAR:
            methods["k-means (standardised by hand)"] = (lambda c: lambda seed: StandardisedKMeans(c, seed))(k)
        for v in args.variant:
            over = json.loads(v)
            if args.epochs is not None:
                over.setdefault("epochs", args.epochs)
            label = "I-Con (" + ", ".join(f"{a}={b}" for a, b in over.items()) + ")"
            methods[label] = (lambda o: lambda seed: IConClustering(k, random_state=seed, device="cpu", **o))(over)
        result = compare(X, y, methods, seeds)
        title = f"{name}, {X.shape[0]} points, {enc} features ({X.shape[1]}-d), {k} classes, seeds {args.seeds}"
        table = markdown_table(result["summary"], title)
        print(table, flush=True)
        (out / f"{name}.md").write_text(table)
        (out / f"{name}.json").write_text(json.dumps({
            "dataset": name, "encoder": enc, "n": int(X.shape[0]), "dim": int(X.shape[1]), "classes": k,
            "seeds": seeds, "runs": result["runs"], "machine": platform.platform(), "threads": args.threads,
            "command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
            "summary": {m: {kk: list(v) for kk, v in s.items()} for m, s in result["summary"].items()}}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

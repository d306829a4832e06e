"""Does the I-Con clustering objective prefer the true labelling? The exact full-data loss of hard
partitions (true labels, k-means restarts, random labels) on cached real features.

    python benchmarks/clustering_objective.py --dataset 20newsgroups --restarts 5

For a hard partition with cluster sizes n_c, the shared cluster likelihood is q(j|i) = [c_i = c_j]
/ n_c, debiased q' = (1 - alpha_q) q + alpha_q / N, and p = (1 - alpha_p) W + alpha_p / N with W
the kNN-walk matrix (rows sum to 1). The loss -1/N sum_i sum_j p_ij log q'_ij is then exact in
O(nnz(W) + N): the uniform part of p only needs n_c. A lower value for the true labels than for
k-means says the objective points the right way and what remains is optimisation and selection.
"""
from __future__ import annotations

import argparse
import sys

import numpy as np

from iconlearn.data.features import extract_features
from iconlearn.cluster_likelihood import hard_partition_loss
from iconlearn.metrics import clustering_scores
from iconlearn.neighbors import knn
from iconlearn.supervisory.graph import knn_matrix, walk_matrix

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from bench_clustering import SPECS  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="20newsgroups", choices=sorted(SPECS))
    ap.add_argument("--restarts", type=int, default=5)
    ap.add_argument("--k", type=int, default=3)
    ap.add_argument("--walks", type=int, default=1)
    args = ap.parse_args(argv)
    from sklearn.cluster import KMeans

    enc, kw = SPECS[args.dataset]
    X, y = extract_features(args.dataset, enc, **kw)
    n, k = len(y), len(np.unique(y))
    _, idx = knn(X, args.k, metric="cosine")
    W = walk_matrix(knn_matrix(idx, n), steps=1 + args.walks)
    Xh = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    parts = {"true labels": y}
    for s in range(args.restarts):
        parts[f"k-means restart {s}"] = KMeans(k, n_init=1, random_state=s).fit_predict(Xh)
    parts["random labels"] = np.random.default_rng(0).integers(0, k, n)
    alphas = [(0.0, 0.6), (0.2, 0.2), (0.6, 0.6), (0.8, 0.8)]
    print(f"{args.dataset}: N = {n}, k = {args.k}, walks = {args.walks}\n")
    print("| partition | acc | " + " | ".join(f"loss a_p={a} a_q={b}" for a, b in alphas) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in alphas) + " |")
    for name, lab in parts.items():
        acc = clustering_scores(y, lab)["acc"]
        print(f"| {name} | {acc:.3f} | " + " | ".join(f"{hard_partition_loss(lab, W, a, b):.4f}" for a, b in alphas) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

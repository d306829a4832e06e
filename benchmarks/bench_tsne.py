"""t-SNE on Fashion-MNIST (70,000 images, PCA to 50 dimensions, the same input for every method):
iconlearn.TSNE beside openTSNE (defaults) on all 70,000 points; scikit-learn's TSNE and
umap-learn (plus iconlearn and openTSNE again) on a 10,000-point subset.

Reports kNN accuracy (k=10, leave-one-out on the embedding), trustworthiness (k=10, averaged
over a fixed random sample of query points, ranks against all points) and wall time, with the
ratio iconlearn / openTSNE. Prints a table and writes JSON.

    nice -n 5 python benchmarks/bench_tsne.py --out benchmarks/results/tsne.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch


def pca50(X: np.ndarray, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA

    return PCA(50, random_state=seed).fit_transform(X.astype(np.float32)).astype(np.float32)


def scores(X, Y, labels, n_queries, seed=0) -> dict:
    from iconlearn.metrics import knn_accuracy, trustworthiness

    t = time.perf_counter()
    out = {"knn_acc_k10": knn_accuracy(Y, labels, k=10),
           "trustworthiness_k10": trustworthiness(X, Y, k=10, n_queries=n_queries, random_state=seed, dtype=torch.float32)}
    out["metric_seconds"] = time.perf_counter() - t
    return out


def run_iconlearn(X, seed, verbose):
    from iconlearn import TSNE

    t = time.perf_counter()
    est = TSNE(random_state=seed, verbose=verbose)
    Y = est.fit_transform(X)
    return Y, time.perf_counter() - t, {"timings": est.timings_, "kl": est.kl_divergence_, "method": est.method_}


def run_opentsne(X, seed, n_jobs):
    from openTSNE import TSNE as OpenTSNE

    t = time.perf_counter()
    kw = {} if n_jobs == 1 else {"n_jobs": n_jobs}  # n_jobs=1 is openTSNE's default
    emb = OpenTSNE(random_state=seed, **kw).fit(X)
    return np.asarray(emb), time.perf_counter() - t, {"kl": float(emb.kl_divergence), "n_jobs": n_jobs}


def run_sklearn(X, seed):
    from sklearn.manifold import TSNE as SkTSNE

    t = time.perf_counter()
    Y = SkTSNE(random_state=seed, init="pca", learning_rate="auto").fit_transform(X)
    return Y, time.perf_counter() - t, {}


def run_umap(X, seed):
    import umap

    t = time.perf_counter()
    Y = umap.UMAP(random_state=seed).fit_transform(X)
    return Y, time.perf_counter() - t, {"note": "random_state set: umap runs single-threaded"}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/tsne.json")
    ap.add_argument("--n", type=int, default=70000, help="points in the main run (all 70,000 by default)")
    ap.add_argument("--subset", type=int, default=10000, help="points in the reference run (0 to skip)")
    ap.add_argument("--n-queries", type=int, default=10000, help="query points for trustworthiness")
    ap.add_argument("--opentsne-jobs", type=int, nargs="+", default=[1], help="n_jobs values for openTSNE (1 = its default)")
    ap.add_argument("--skip", nargs="*", default=[], help="methods to skip: iconlearn opentsne sklearn umap")
    ap.add_argument("--threads", type=int, default=1, help="threads for torch / numba (openTSNE's default n_jobs is 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-embeddings", default=None, help="folder for the .npy embeddings")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        import numba

        numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    from iconlearn.data.datasets import load_dataset

    ds = load_dataset("fashion-mnist", "all")
    rng = np.random.default_rng(args.seed)
    idx = np.sort(rng.choice(len(ds.y), args.n, replace=False)) if args.n < len(ds.y) else np.arange(len(ds.y))
    X = pca50(np.asarray(ds.X, np.float32).reshape(len(ds.y), -1)[idx], args.seed)
    y = np.asarray(ds.y)[idx]
    result = {"dataset": "fashion-mnist", "n": int(len(y)), "input": "PCA to 50 dims (sklearn PCA, seed 0)",
              "machine": f"{platform.node()} {os.cpu_count()}-core CPU, torch threads {args.threads}",
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "runs": {}}

    def record(key, fn, Xs, ys, *fa):
        print(f"--- {key} on {len(ys)} points", flush=True)
        Y, secs, extra = fn(Xs, *fa)
        r = {"seconds": secs, **extra, **scores(Xs, Y, ys, min(args.n_queries, len(ys)), args.seed)}
        result["runs"][key] = r
        print(json.dumps({key: r}, default=float), flush=True)
        if args.save_embeddings:
            os.makedirs(args.save_embeddings, exist_ok=True)
            np.save(os.path.join(args.save_embeddings, f"{key}.npy"), Y)
        _write(args.out, result)
        return r

    ours = None
    if "iconlearn" not in args.skip:
        ours = record(f"iconlearn_tsne_{len(y)}", run_iconlearn, X, y, args.seed, args.verbose)
    if "opentsne" not in args.skip:
        for j in args.opentsne_jobs:
            theirs = record(f"opentsne_{len(y)}_jobs{j}", run_opentsne, X, y, args.seed, j)
            if ours is None:
                continue
            result[f"ratio_time_iconlearn_over_opentsne_jobs{j}"] = ours["seconds"] / theirs["seconds"]
            result[f"delta_knn_acc_jobs{j}"] = ours["knn_acc_k10"] - theirs["knn_acc_k10"]
            result[f"delta_trustworthiness_jobs{j}"] = ours["trustworthiness_k10"] - theirs["trustworthiness_k10"]
    if args.subset:
        sub = np.sort(rng.choice(len(y), min(args.subset, len(y)), replace=False))
        Xs, ys = X[sub], y[sub]
        m = len(ys)
        if "iconlearn" not in args.skip:
            record(f"iconlearn_tsne_{m}", run_iconlearn, Xs, ys, args.seed, args.verbose)
        if "opentsne" not in args.skip:
            record(f"opentsne_{m}_jobs1", run_opentsne, Xs, ys, args.seed, 1)
        if "sklearn" not in args.skip:
            record(f"sklearn_tsne_{m}", run_sklearn, Xs, ys, args.seed)
        if "umap" not in args.skip:
            record(f"umap_{m}", run_umap, Xs, ys, args.seed)
    _write(args.out, result)
    print(json.dumps(result, indent=1, default=float))
    return result


def _write(path, result):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=float)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()

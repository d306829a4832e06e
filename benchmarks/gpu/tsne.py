"""iconlearn.TSNE on Fashion-MNIST (70,000 images, PCA to 50 dims) on a CUDA GPU: wall time and
quality (kNN accuracy k=10 leave-one-out, trustworthiness k=10 on 5,000 query points), for
comparison with openTSNE on the 2-core CPU (BENCHMARKS.md, t-SNE).

Self-contained: torch + numpy (+ scikit-learn for nothing essential); no faiss, no openTSNE.

    PYTHONPATH=src python benchmarks/gpu/tsne.py --fashion-dir /path/to/fashion-mnist --out tsne_gpu.json
    PYTHONPATH=src python benchmarks/gpu/tsne.py --device cpu --tiny --out /tmp/t.json   # smoke test
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch

FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
         "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def load_fashion(root: str):
    xs, ys = [], []
    for split, (img, lab) in FILES.items():
        pi, pl = os.path.join(root, img), os.path.join(root, lab)
        if not (os.path.exists(pi) and os.path.exists(pl)):
            sys.exit(f"error: Fashion-MNIST IDX files not found in {root!r} (need {img} and {lab}); "
                     "pass --fashion-dir (Debian: /usr/share/datasets/fashion-mnist)")
        with gzip.open(pi) as f:
            xs.append(np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784))
        with gzip.open(pl) as f:
            ys.append(np.frombuffer(f.read(), np.uint8, offset=8))
    return np.concatenate(xs).astype(np.float32), np.concatenate(ys).astype(np.int64)


def pca50(X: torch.Tensor, seed: int) -> torch.Tensor:
    torch.manual_seed(seed)
    Xc = X - X.mean(0)
    _, _, v = torch.svd_lowrank(Xc, q=60, niter=6)
    return Xc @ v[:, :50]


def knn_acc_gpu(Y: torch.Tensor, y: np.ndarray, k: int = 10) -> float:
    from iconlearn.neighbors import knn

    _, idx = knn(Y.float(), k, metric="sqeuclidean", backend="torch")
    votes = np.zeros((len(y), y.max() + 1))
    np.add.at(votes, (np.arange(len(y))[:, None], y[idx]), 1.0)
    return float((votes.argmax(1) == y).mean())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fashion-dir", default="/usr/share/datasets/fashion-mnist")
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="3,000 points and few iterations (smoke test)")
    ap.add_argument("--budget", type=float, default=120.0, help="wall-time budget in seconds")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("error: --device cuda but torch.cuda.is_available() is False")
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "src"))
    from iconlearn import TSNE
    from iconlearn.metrics import trustworthiness

    dev = torch.device(args.device)
    X, y = load_fashion(args.fashion_dir)
    n_iter = 500
    if args.tiny:
        keep = np.random.default_rng(args.seed).choice(len(y), 3000, replace=False)
        X, y, n_iter = X[keep], y[keep], 100
    result = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "n": int(len(y)),
              "torch": torch.__version__, "tiny": args.tiny, "budget_s": args.budget}

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    # warm-up (CUDA context, cuFFT plans, kernels): not timed
    t = time.perf_counter()
    TSNE(random_state=0, device=dev, n_iter=20, early_exaggeration_iter=20, negative_gradient_method="fft").fit(
        np.random.default_rng(0).normal(size=(2000, 50)).astype(np.float32))
    sync()
    result["warmup_s"] = time.perf_counter() - t

    t0 = time.perf_counter()
    X50 = pca50(torch.as_tensor(X, device=dev), args.seed)
    sync()
    t_pca = time.perf_counter() - t0
    est = TSNE(random_state=args.seed, device=dev, n_iter=n_iter, negative_gradient_method="fft")
    t1 = time.perf_counter()
    est.fit(X50.cpu().numpy())
    sync()
    t_fit = time.perf_counter() - t1
    result.update({"pca_s": t_pca, "tsne_s": t_fit, "total_s_pca_plus_tsne": t_pca + t_fit,
                   "timings": est.timings_, "kl": est.kl_divergence_, "n_iter": est.n_iter_})
    print(json.dumps(result, default=float), flush=True)
    if time.perf_counter() - t_start < args.budget - 20:
        Y = torch.as_tensor(est.embedding_, device=dev)
        result["knn_acc_k10"] = knn_acc_gpu(Y, y)
        result["trustworthiness_k10_5000q"] = trustworthiness(X50.cpu().numpy(), est.embedding_, k=10,
                                                              n_queries=min(5000, len(y)), dtype=torch.float32)
    else:
        result["metrics_skipped"] = "wall-time budget"
    result["wall_s"] = time.perf_counter() - t_start
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    tmp = args.out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=float)
    os.replace(tmp, args.out)
    print(json.dumps(result, indent=1, default=float))


if __name__ == "__main__":
    main()

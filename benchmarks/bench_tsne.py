"""t-SNE beside its peers: iconlearn.TSNE, openTSNE (n_jobs=1 and n_jobs=2) and
scikit-learn's TSNE on Fashion-MNIST (PCA to 50 dimensions, the same input for every method) at
N = 1,000 ... 70,000, and on scikit-learn's digits (1,797 points); each on a quiet machine and
again beside one competing busy process that the script starts (a Python loop on one core).

Every fit runs in its own fresh process, timed around ``fit`` only (imports, data loading and a
small warm-up fit excluded: numba loads its compiled kernels on first use, once per process; the
warm-up time is recorded as ``warmup_seconds``). Quality is measured afterwards on the returned
embeddings: kNN accuracy (k=10, leave-one-out) and trustworthiness (k=10, ranks against all
points, averaged over up to ``--n-queries`` query points). Writes JSON (every run, as it ends)
and one Markdown table: seconds, CPU seconds, time / openTSNE's best setting at the same N and
load, kNN accuracy, trustworthiness and their differences to openTSNE.

    python benchmarks/bench_tsne.py --out benchmarks/results/tsne_sweep.json
    python benchmarks/bench_tsne.py --sizes 1000 5000 --loads quiet --out /tmp/quick.json

With a GPU (``--gpu``, default: when torch sees one) the sweep adds iconlearn on the GPU and the
GPU t-SNE peers that are installed (TorchDR, cuML, tsnecuda), and 1,000,000 points (Fashion-MNIST's
PCA-50 repeated with small jitter). The GPU part has not been run on a GPU yet.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

SIZES = (1000, 2000, 5000, 20000, 70000)
CPU_METHODS = ("iconlearn", "opentsne_jobs1", "opentsne_jobs2", "sklearn")
GPU_METHODS = ("iconlearn_gpu", "torchdr", "cuml", "tsnecuda")


# ---------------------------------------------------------------- one fit, in a worker process
def fit_one(method: str, X: np.ndarray, seed: int) -> tuple[np.ndarray, dict]:
    """The method with its defaults (as a user would call it) on X; returns (embedding, extra)."""
    if method in ("iconlearn", "iconlearn_gpu"):
        from iconlearn import TSNE

        est = TSNE(random_state=seed, device="cuda" if method == "iconlearn_gpu" else "cpu")
        Y = est.fit_transform(X)
        return Y, {"kl": est.kl_divergence_, "method": est.method_, "timings": est.timings_}
    if method.startswith("opentsne"):
        from openTSNE import TSNE

        emb = TSNE(random_state=seed, n_jobs=int(method[-1])).fit(X)
        return np.asarray(emb), {"kl": float(emb.kl_divergence)}
    if method == "sklearn":
        from sklearn.manifold import TSNE

        est = TSNE(random_state=seed)
        Y = est.fit_transform(X)
        return Y, {"kl": float(est.kl_divergence_)}
    if method == "torchdr":
        import torchdr

        try:
            est = torchdr.TSNE(device="cuda", random_state=seed)
        except TypeError:  # versions without random_state
            est = torchdr.TSNE(device="cuda")
        Y = est.fit_transform(X)
        return np.asarray(Y.cpu() if hasattr(Y, "cpu") else Y), {}
    if method == "cuml":
        from cuml.manifold import TSNE

        return np.asarray(TSNE(random_state=seed).fit_transform(X)), {}
    if method == "tsnecuda":
        from tsnecuda import TSNE

        return np.asarray(TSNE(random_seed=seed).fit_transform(X)), {}
    raise ValueError(f"unknown method {method!r}")


def worker(args) -> None:
    """Fit one method on rows ``--rows`` of the data file; write the embedding and a JSON line."""
    X = np.load(args.data, mmap_mode="r")
    X = np.ascontiguousarray(X[np.load(args.rows)] if args.rows else X, dtype=np.float32)
    t = time.perf_counter()
    fit_one(args.worker, X[:200], args.seed)  # warm-up: imports, first calls
    warmup = time.perf_counter() - t
    t, c = time.perf_counter(), time.process_time()
    Y, extra = fit_one(args.worker, X, args.seed)
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    np.save(args.embedding, np.asarray(Y, dtype=np.float32))
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "warmup_seconds": warmup, **extra}, default=float))


# ---------------------------------------------------------------- the sweep
def fashion_mnist_pca50(seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.decomposition import PCA

    from iconlearn.data.datasets import load_dataset

    ds = load_dataset("fashion-mnist", "all")
    X = np.asarray(ds.X, np.float32).reshape(len(ds.y), -1)
    return PCA(50, random_state=seed).fit_transform(X).astype(np.float32), np.asarray(ds.y)


def digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return X.astype(np.float32), y


def million(X: np.ndarray, y: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """1,000,000 points: the PCA-50 rows repeated, each copy jittered by 5% of the data's spread."""
    rng = np.random.default_rng(seed)
    reps = -(-1_000_000 // len(X))
    big = np.concatenate([X + rng.normal(0, 0.05 * X.std(), X.shape).astype(np.float32) for _ in range(reps)])
    return big[:1_000_000], np.tile(y, reps)[:1_000_000]


def scores(X, Y, labels, n_queries: int, seed: int) -> dict:
    import torch

    from iconlearn.metrics import knn_accuracy, trustworthiness

    return {"knn_acc_k10": knn_accuracy(Y, labels, k=10),
            "trustworthiness_k10": trustworthiness(X, Y, k=10, n_queries=min(n_queries, len(labels)),
                                                   random_state=seed, dtype=torch.float32)}


def busy_process() -> subprocess.Popen:
    """A competing job: one Python process spinning on one core."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run(method: str, data: str, rows: str | None, seed: int, load: bool, workdir: str, timeout: int) -> dict:
    emb = os.path.join(workdir, f"{method}.npy")
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", method, "--data", data, "--embedding", emb,
           "--seed", str(seed)] + (["--rows", rows] if rows else [])
    spin = busy_process() if load else None
    try:
        if spin is not None:
            time.sleep(1.0)  # let it take its core
        load_before = os.getloadavg()[0]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    finally:
        if spin is not None:
            spin.kill()
            spin.wait()
    if out.returncode != 0:
        return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["load_average_before"] = load_before
    result["embedding"] = emb
    return result


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="benchmarks/results/tsne_sweep.json")
    ap.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="Fashion-MNIST subset sizes")
    ap.add_argument("--digits", action=argparse.BooleanOptionalAction, default=True, help="also digits (1,797 points)")
    ap.add_argument("--loads", nargs="+", default=["quiet", "busy"], choices=["quiet", "busy"],
                    help="quiet, and/or beside one competing busy process")
    ap.add_argument("--methods", nargs="+", default=list(CPU_METHODS), help=f"CPU methods: {CPU_METHODS}")
    ap.add_argument("--sklearn-max-n", type=int, default=20000,
                    help="largest N for scikit-learn's TSNE (its 70,000-point run takes tens of minutes)")
    ap.add_argument("--gpu", action=argparse.BooleanOptionalAction, default=None,
                    help="GPU methods and 1,000,000 points (default: when torch sees a GPU)")
    ap.add_argument("--n-queries", type=int, default=5000, help="query points for trustworthiness")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per fit")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--rows", help=argparse.SUPPRESS)
    ap.add_argument("--embedding", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker(args)
    import torch

    gpu = torch.cuda.is_available() if args.gpu is None else args.gpu
    from joblib import cpu_count

    result = {"machine": f"{platform.node()}: {cpu_count(only_physical_cores=True)} physical cores "
                         f"({os.cpu_count()} logical), {platform.processor() or platform.machine()}",
              "gpu": torch.cuda.get_device_name() if gpu else None,
              "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "input": "Fashion-MNIST (70,000) PCA to 50 dims (sklearn PCA, seed 0); digits raw (64 dims)",
              "runs": []}
    X_all, y_all = fashion_mnist_pca50(args.seed)
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        datasets = []
        path = os.path.join(tmp, "fmnist.npy")
        np.save(path, X_all)
        for n in args.sizes:
            rows = None
            if n < len(y_all):
                rows = os.path.join(tmp, f"rows_{n}.npy")
                np.save(rows, np.sort(rng.choice(len(y_all), n, replace=False)))
            datasets.append(("fashion-mnist", n, path, rows))
        if args.digits:
            Xd, yd = digits()
            np.save(os.path.join(tmp, "digits.npy"), Xd)
            datasets.append(("digits", len(yd), os.path.join(tmp, "digits.npy"), None))
        if gpu:
            Xm, ym = million(X_all, y_all, args.seed)
            np.save(os.path.join(tmp, "million.npy"), Xm)
            datasets.append(("fashion-mnist x15 jittered", len(ym), os.path.join(tmp, "million.npy"), None))
        for name, n, data, rows in datasets:
            X = np.load(data)[np.load(rows)] if rows else np.load(data)
            y = (yd if name == "digits" else ym if name.startswith("fashion-mnist x") else
                 y_all[np.load(rows)] if rows else y_all)
            methods = [] if n > 100_000 else [m for m in args.methods if m != "sklearn" or n <= args.sklearn_max_n]
            methods += list(GPU_METHODS) if gpu else []
            for load in args.loads if n <= 100_000 else ["quiet"]:
                for method in methods:
                    print(f"--- {name} N={n} {load}: {method}", flush=True)
                    r = run(method, data, rows, args.seed, load == "busy", tmp, args.timeout)
                    if "error" not in r:
                        r.update(scores(X, np.load(r.pop("embedding")), y, args.n_queries, args.seed))
                    r.update(dataset=name, n=n, load=load, method=method)
                    result["runs"].append(r)
                    print(json.dumps(r, default=float), flush=True)
                    _write(args.out, result)
    result["table"] = table(result["runs"])
    _write(args.out, result)
    with open(os.path.splitext(args.out)[0] + ".md", "w") as f:
        f.write(result["table"] + "\n")
    print(result["table"])
    return result


def table(runs: list[dict]) -> str:
    """One Markdown table; time ratios against openTSNE's faster setting and against scikit-learn,
    quality differences against openTSNE's faster setting (same data, N and load)."""
    lines = ["| data | N | load | method | seconds | CPU s | time / openTSNE best | time / sklearn | kNN acc | "
             "d kNN | trust | d trust |",
             "| --- | ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in runs:
        if "error" in r:
            lines.append(f"| {r['dataset']} | {r['n']:,} | {r['load']} | {r['method']} | {r['error']} |" + " |" * 7)
            continue
        same = [p for p in runs if "error" not in p and (p["dataset"], p["n"], p["load"]) == (r["dataset"], r["n"], r["load"])]
        opentsne = [p for p in same if p["method"].startswith("opentsne")]
        best = min(opentsne, key=lambda p: p["seconds"]) if opentsne else None
        sk = next((p for p in same if p["method"] == "sklearn"), None)
        cells = [f"{r['seconds'] / best['seconds']:.2f}x" if best else "",
                 f"{r['seconds'] / sk['seconds']:.2f}x" if sk else "",
                 f"{r['knn_acc_k10']:.4f}",
                 f"{100 * (r['knn_acc_k10'] - best['knn_acc_k10']):+.2f} pt" if best else "",
                 f"{r['trustworthiness_k10']:.4f}",
                 f"{r['trustworthiness_k10'] - best['trustworthiness_k10']:+.4f}" if best else ""]
        lines.append(f"| {r['dataset']} | {r['n']:,} | {r['load']} | {r['method']} | {r['seconds']:.2f} | "
                     f"{r['cpu_seconds']:.1f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write(path, result):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=float)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()

"""How IConClustering's fit grows with N: time and peak memory of the default fit at 10,000, 20,000,
40,000 and 70,000 Fashion-MNIST points (EfficientNet-Lite0 features, random subsets), the log-log
slope of time against N, and one timing-only row at 1,000,000 synthetic points x 384 dimensions
(a mixture of 10 Gaussians on the sphere, labelled synthetic; its accuracy is not a result).

Every fit runs in its own fresh process (peak memory is that process's maximum resident set,
data included; the data's own size is given beside it).

    python benchmarks/bench_clustering_scaling.py --out benchmarks/results/clustering_scaling
    python benchmarks/bench_clustering_scaling.py --sizes 10000 20000 --no-million
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

SIZES = (10_000, 20_000, 40_000, 70_000)


def load(n: int, seed: int = 0):
    """(X, y, what): n Fashion-MNIST feature rows, or for n > 70,000 the synthetic mixture."""
    if n <= 70_000:
        from iconlearn.data.features import extract_features

        X, y = extract_features("fashion-mnist", "efficientnet-lite0", size=64)[:2]
        rows = np.sort(np.random.default_rng(seed).choice(len(X), n, replace=False)) if n < len(X) else np.arange(len(X))
        return np.ascontiguousarray(X[rows]), y[rows], "Fashion-MNIST EfficientNet-Lite0 (1280-d)"
    rng = np.random.default_rng(seed)
    d, c = 384, 10
    centres = rng.standard_normal((c, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    y = rng.integers(0, c, n)
    X = np.empty((n, d), np.float32)
    for s in range(0, n, 100_000):  # in chunks: no float64 N x D temporary
        noise = rng.standard_normal((min(100_000, n - s), d), dtype=np.float32) * np.float32(1.2 / np.sqrt(d))
        X[s:s + len(noise)] = centres[y[s:s + len(noise)]] + noise
    return X, y, "synthetic: 10 Gaussians, 384-d (timing only)"


def worker(n: int, threads: int) -> dict:
    import torch

    from iconlearn import IConClustering
    from iconlearn.metrics.clustering import hungarian_accuracy

    torch.set_num_threads(threads)
    X, y, what = load(n)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    t0 = time.perf_counter()
    m = IConClustering(len(np.unique(y)), random_state=0, device="cpu").fit(X)
    seconds = time.perf_counter() - t0
    return {"n": n, "dim": X.shape[1], "data": what, "seconds": seconds, "fit_time": m.fit_time_,
            "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
            "rss_after_loading_gib": rss_data, "features_gib": X.nbytes / 2**30,
            "acc": float(hungarian_accuracy(y, m.labels_)), "refine_moves": int(m.refine_moves_)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help="Fashion-MNIST sizes (none: only the million row)")
    ap.add_argument("--million", action=argparse.BooleanOptionalAction, default=True,
                    help="also the 1,000,000 x 384 synthetic timing row")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default="benchmarks/results/clustering_scaling")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.threads)))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in list(args.sizes) + ([1_000_000] if args.million else []):
        res = subprocess.run([sys.executable, __file__, "--worker", str(n), "--threads", str(args.threads)],
                             capture_output=True, text=True)
        if res.returncode:
            raise SystemExit(f"N={n} failed:\n{res.stderr[-3000:]}")
        rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    real = [r for r in rows if r["n"] <= 70_000]
    slope = float(np.polyfit(np.log([r["n"] for r in real]), np.log([r["seconds"] for r in real]), 1)[0]) \
        if len(real) > 1 else None
    meta = {"machine": f"{platform.processor() or platform.machine()}, {args.threads} torch threads",
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "command": " ".join(sys.argv),
            "slope_10k_70k": slope, "rows": rows}
    (out / "scaling.json").write_text(json.dumps(meta, indent=1))
    lines = ["| N | data | fit time (s) | peak memory (GiB) | features (GiB) | accuracy |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        acc = f"{r['acc']:.3f}" if r["n"] <= 70_000 else "(synthetic)"
        lines.append(f"| {r['n']:,} | {r['data']} | {r['seconds']:.1f} | {r['peak_rss_gib']:.2f} | {r['features_gib']:.2f} | {acc} |")
    if slope is not None:
        lines.append(f"\nlog-log slope of time against N over {real[0]['n']:,}-{real[-1]['n']:,}: {slope:.2f}")
    (out / "scaling.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())

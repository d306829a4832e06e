"""I-Con clustering (and k-means) on cached 20 Newsgroups MiniLM features on a GPU.

    PYTHONPATH=src python benchmarks/gpu/clustering.py --features-dir .devcarry/features \
        --out $OUT/clustering_gpu.json --budget 60

Reads <features-dir>/20newsgroups-minilm-f16.npy (18,821 x 384, float16) and
20newsgroups-labels.npy; runs IConClustering with the library defaults for each seed until the
wall-time budget is spent; writes accuracy / NMI / time per run as JSON to --out.
``--device cpu --tiny`` checks the script on a CPU with 2,000 points.
No faiss, no internet needed (the torch kNN path runs on the device).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--features-dir", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget", type=float, default=60.0, help="wall-time budget in seconds")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--tiny", action="store_true", help="2,000 points, 2 epochs: a smoke test")
    args = ap.parse_args(argv)
    start = time.perf_counter()
    d = Path(args.features_dir)
    fx, fy = d / "20newsgroups-minilm-f16.npy", d / "20newsgroups-labels.npy"
    for f in (fx, fy):
        if not f.exists():
            raise SystemExit(f"missing {f}: copy the float16 features into --features-dir")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("--device cuda but torch.cuda.is_available() is False")
    from iconlearn.estimators.baselines import KMeansClustering
    from iconlearn.estimators.clustering import IConClustering
    from iconlearn.metrics import clustering_scores

    X = np.load(fx).astype(np.float32)
    y = np.load(fy).astype(np.int64)
    if args.tiny:
        X, y = X[:2000], y[:2000]
    k = len(np.unique(y))
    results = {"device": args.device, "gpu": torch.cuda.get_device_name() if args.device.startswith("cuda") else None,
               "torch": torch.__version__, "n": int(len(X)), "dim": int(X.shape[1]), "runs": []}

    def save():
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1))
        tmp.replace(out)

    t = time.perf_counter()
    km = KMeansClustering(k, n_init=3, random_state=0).fit_predict(X)
    results["kmeans"] = {**clustering_scores(y, km), "time": time.perf_counter() - t}
    save()
    for seed in [int(s) for s in args.seeds.split(",")]:
        spent = time.perf_counter() - start
        if spent > 0.6 * args.budget and results["runs"]:
            results["stopped"] = f"budget: {spent:.0f}s of {args.budget:.0f}s spent before seed {seed}"
            break
        kw = {"epochs": 2, "min_steps": 20} if args.tiny else {}
        t = time.perf_counter()
        m = IConClustering(k, random_state=seed, device=args.device, batch_size=args.batch_size, **kw).fit(X)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        run = {"seed": seed, **clustering_scores(y, m.labels_), "time": time.perf_counter() - t,
               "fit_time": m.fit_time_}
        results["runs"].append(run)
        print(json.dumps(run), flush=True)
        save()
    if results["runs"]:
        results["acc_mean"] = float(np.mean([r["acc"] for r in results["runs"]]))
    save()
    print(json.dumps({k: v for k, v in results.items() if k != "runs"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Settings sweep of IConClustering on cached features of several real data sets, on a GPU.

    PYTHONPATH=src python benchmarks/gpu/clustering_sweep.py --data-dir .devcarry/sweep \
        --grid oat --seeds 0,1 --workers 8 --budget 300 --out $OUT/sweep.jsonl

The data folder holds <name>-X.npy (float16 features) and <name>-y.npy (labels) for each data set,
written by ``benchmarks/gpu/prepare_sweep_data.py`` from the feature cache. Each run is one
(data set, settings, seed); settings are overrides of the IConClustering defaults, or
``{"method": NAME, ...}`` for a baseline of ``iconlearn.estimators.baselines.BASELINES`` with its
own defaults (plus overrides), or the string ``"k-means"``. ``--grid oat``
varies one setting at a time around ``--base`` (JSON); ``--grid FILE.json`` reads a list of
override dicts. Runs are spread over worker processes sharing the GPU; each finished run is
appended to --out as one JSON line (metrics of the selected head, the best head by accuracy, fit
time), so a run cut short by the time limit keeps what it finished. k-means (L2, 3 inits) is run
once per data set and seed as the reference. The kNN lists are computed once per worker and data
set (k = 30, cosine) and sliced, which is what ``knn`` would return for smaller k.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ONE_AT_A_TIME = {
    "normalize": [None, "l2", "center-l2", "standard"],
    "n_neighbors": [3, 5, 10, 20],
    "walks": [0, 1, 2],
    "binarize_walks": [False, True],
    "alpha": [(0.0, 0.0), (0.4, 0.4), (0.6, 0.6), (0.8, 0.8), (0.9, 0.9), (0.6, 0.0), (0.0, 0.6), (0.8, 0.4)],
    "batch_size": [256, 512, 1024, 2048, 4096],
    "epochs": [10, 20, 40, 80],
    "lr": [3e-3, 1e-2, 3e-2, 1e-1],
    "neighbors_per_anchor": [1, 2, 4],
    "ema_decay": [None, 0.9, 0.99, 0.999],
    "hidden": [0, 512],
}

_DATA: dict = {}
_KNN: dict = {}


def expand(over: dict) -> dict:
    over = dict(over)
    if "alpha" in over:
        over["alpha_p"], over["alpha_q"] = over.pop("alpha")
    return over


def oat_grid(base: dict) -> list[dict]:
    """The base settings, then each value of ONE_AT_A_TIME that differs from them."""
    from iconlearn.estimators.clustering import IConClustering

    settings = {**IConClustering().get_params(), **base}
    grid = [{}]
    for key, values in ONE_AT_A_TIME.items():
        for v in values:
            if expand({key: v}).items() <= settings.items():
                continue
            grid.append({key: v})
    return grid


def _init(data_dir: str, names: list[str], device: str, threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from iconlearn.estimators import clustering
    from iconlearn.neighbors import knn

    for name in names:
        X = np.load(Path(data_dir) / f"{name}-X.npy").astype(np.float32)
        y = np.load(Path(data_dir) / f"{name}-y.npy").astype(np.int64)
        _DATA[name] = (X, y)
        _, idx = knn(torch.as_tensor(X, device=device), min(30, len(X) - 1), metric="cosine", backend="torch")
        _KNN[X.shape] = np.asarray(idx.cpu() if hasattr(idx, "cpu") else idx)

    def cached_knn(x, k, metric="cosine", **kw):
        return None, _KNN[tuple(x.shape)][:, :k]

    clustering.knn = cached_knn


def _run(job: tuple) -> dict:
    import torch

    from iconlearn.estimators.baselines import BASELINES, KMeansClustering
    from iconlearn.estimators.clustering import IConClustering, normalize_features
    from iconlearn.metrics import clustering_scores

    name, over, seed, device, base = job
    X, y = _DATA[name]
    k = int(y.max()) + 1
    t0 = time.perf_counter()
    try:
        over = dict(over) if isinstance(over, dict) else over
        method = over.pop("method", "I-Con") if isinstance(over, dict) else over
        label = over.pop("name", None) if isinstance(over, dict) else None
        if method == "k-means":
            labels = KMeansClustering(k, n_init=3, random_state=seed).fit_predict(X)
            extra = {}
        elif method == "spectral":
            labels = BASELINES["spectral"](k, random_state=seed).fit_predict(X)
            extra = {}
        else:
            cls = IConClustering if method == "I-Con" else BASELINES[method]
            m = cls(k, random_state=seed, device=device, **{**base, **expand(over)}).fit(X)
            labels = m.labels_
            with torch.no_grad():
                probs = m.heads_.probs(torch.as_tensor(normalize_features(X, m.normalize, m.norm_stats_)[0], device=device))
            per_head = [clustering_scores(y, p.argmax(1).cpu().numpy())["acc"] for p in probs]
            extra = {"head_acc": per_head, "head_loss": [float(v) for v in m.head_losses_], "best_head": m.best_head_}
        out = {"data": name, "method": method, "name": label, "over": over, "seed": seed, **clustering_scores(y, labels), **extra,
               "time": time.perf_counter() - t0}
    except Exception as e:  # keep sweeping; record the failure
        out = {"data": name, "method": method, "name": label, "over": over, "seed": seed, "error": repr(e)[:300], "time": time.perf_counter() - t0}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--datasets", default=None, help="comma-separated (default: every <name>-X.npy found)")
    ap.add_argument("--grid", default="oat")
    ap.add_argument("--base", default="{}", help="JSON overrides applied to every run")
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds; no new run starts after it")
    ap.add_argument("--no-kmeans", action="store_true", help="no k-means reference runs")
    ap.add_argument("--out", required=True)
    args = ap.parse_args(argv)
    start = time.perf_counter()
    names = args.datasets.split(",") if args.datasets else sorted(p.name[:-6] for p in Path(args.data_dir).glob("*-X.npy"))
    base = expand(json.loads(args.base))
    grid = oat_grid(base) if args.grid == "oat" else json.loads(Path(args.grid).read_text())
    seeds = [int(s) for s in args.seeds.split(",")]
    jobs = [] if args.no_kmeans else [(n, "k-means", s, args.device, base) for n in names for s in seeds]
    jobs += [(n, over, s, args.device, base) for over, s, n in itertools.product(grid, seeds, names)]
    print(f"{len(jobs)} runs on {names} with {args.workers} workers; base {base}", flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    done = 0
    with ctx.Pool(args.workers, initializer=_init, initargs=(args.data_dir, names, args.device, args.threads)) as pool, \
            out.open("a") as fh:
        pending = []
        it = iter(jobs)
        for job in itertools.islice(it, 2 * args.workers):
            pending.append(pool.apply_async(_run, (job,)))
        while pending:
            r = pending.pop(0).get()
            r["base"] = base
            fh.write(json.dumps(r) + "\n")
            fh.flush()
            done += 1
            if time.perf_counter() - start < args.budget:
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.apply_async(_run, (nxt,)))
    print(f"{done} of {len(jobs)} runs in {time.perf_counter() - start:.0f}s", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

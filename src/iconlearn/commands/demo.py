"""``iconlearn demo``: the README's main job in under two minutes on a 2-core CPU.

Clusters scikit-learn's 1,797 handwritten digits (bundled, no download, no encoder: the
standardised pixels) with I-Con and every baseline (k-means, spectral, SCAN, TEMI, plain I-Con),
prints the table and writes a report folder (results.md / .json, labels.csv, confusion.png, map.png).
"""
from __future__ import annotations

import time

from ._options import output_dir
from .cluster import add_common, check_common, compare_and_report


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="I-Con vs baselines on the digits, with a report (< 2 minutes)",
                              description=__doc__.split("\n\n")[0])
    add_common(p)
    p.set_defaults(func=run, seeds="0")


def run(args) -> int:
    import numpy as np
    import torch

    from ..data.datasets import load_dataset
    from ..report import default_methods

    t0 = time.perf_counter()
    seeds, include = check_common(args)
    out = output_dir(args, "runs/demo")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    ds = load_dataset("digits")
    X = ds.X.reshape(len(ds.X), -1).astype(np.float32) / 255.0
    methods = default_methods(10, args.epochs, args.device, include)
    print(f"digits: {X.shape[0]} images x {X.shape[1]} pixels, 10 clusters, seeds {seeds}", flush=True)
    title = f"digits (1797 points, 10 clusters, seeds {','.join(map(str, seeds))})"
    compare_and_report(args, out, X, ds.y, methods, seeds, title, ds.class_names,
                       config={"dataset": "digits", "features": "pixels", "seeds": seeds, "epochs": args.epochs})
    print(f"demo finished in {time.perf_counter() - t0:.0f}s")
    return 0

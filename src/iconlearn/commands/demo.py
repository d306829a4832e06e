"""``iconlearn demo``: the README's main job in under two minutes on a 2-core CPU.

Clusters scikit-learn's 1,797 handwritten digits (bundled, no download, no encoder: the
standardised pixels) with I-Con and every baseline (k-means, spectral, SCAN, TEMI, plain I-Con),
prints the table and writes a report folder (results.md / .json, confusion.png, map.png).
"""
from __future__ import annotations

import time
from pathlib import Path

from .cluster import add_common, parse_seeds


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("demo", help="I-Con vs baselines on the digits, with a report (< 2 minutes)",
                              description=__doc__.split("\n\n")[0])
    add_common(p)
    p.set_defaults(func=run, seeds="0", out="runs/demo")


def run(args) -> int:
    import numpy as np
    import torch

    from ..data.datasets import load_dataset
    from ..report import compare, default_methods, markdown_table, write_report

    t0 = time.perf_counter()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    seeds = parse_seeds(args.seeds)
    ds = load_dataset("digits")
    X = ds.X.reshape(len(ds.X), -1).astype(np.float32) / 255.0
    include = [m.strip() for m in args.methods.split(",")] if args.methods else None
    methods = default_methods(10, args.epochs, args.device, include)
    print(f"digits: {X.shape[0]} images x {X.shape[1]} pixels, 10 clusters, seeds {seeds}", flush=True)
    result = compare(X, ds.y, methods, seeds, log=None if args.quiet else print)
    title = f"digits (1797 points, 10 clusters, seeds {','.join(map(str, seeds))})"
    print()
    print(markdown_table(result["summary"], title))
    paths = write_report(Path(args.out), result, X, ds.y, title, ds.class_names,
                         config={"dataset": "digits", "features": "pixels", "seeds": seeds, "epochs": args.epochs})
    print(f"report: {paths['markdown'].parent}/ ({', '.join(p.name for p in paths.values())})")
    print(f"demo finished in {time.perf_counter() - t0:.0f}s")
    return 0

"""``iconlearn cluster``: I-Con clustering against k-means, spectral, SCAN, TEMI and plain I-Con
on frozen features; prints a method x metric table and writes a report folder.

    iconlearn cluster --dataset 20newsgroups --encoder minilm --seeds 0,1,2 --out runs/20ng
    iconlearn cluster --features X.npy --labels y.npy --out runs/mine
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip() != ""]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds:
        raise ValueError("--seeds needs at least one seed")
    return seeds


def add_common(p) -> None:
    p.add_argument("--methods", default=None,
                   help="comma-separated subset of: I-Con, k-means, spectral, SCAN, TEMI, 'I-Con (plain)' (default: all)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated random seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the head-based methods (default: theirs)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--out", default=None, help="report folder (results.md, results.json, confusion.png, map.png)")
    p.add_argument("--quiet", action="store_true", help="no per-run lines")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("cluster", help="cluster frozen features with I-Con and the baselines",
                              description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a DATA.md dataset: digits, mnist5k, fashion-mnist, 20newsgroups, "
                                       "reuters-r8, reuters-r52, pbmc68k, iris, wine, breast_cancer")
    src.add_argument("--features", help="your own features, an (N x D) .npy file")
    p.add_argument("--labels", help="labels for --features, an (N,) .npy file (needed for the metrics)")
    p.add_argument("--encoder", default="auto", help="minilm, efficientnet-lite0, pixels, pca or auto")
    p.add_argument("--split", default="all", help="train, test or all (default all)")
    p.add_argument("--size", type=int, default=64, help="EfficientNet input size in pixels (default 64)")
    p.add_argument("--views", type=int, default=0, help="augmented views for image datasets (default 0)")
    p.add_argument("--n-clusters", type=int, default=None, help="default: the number of classes")
    p.add_argument("--cache-dir", default=None, help="feature cache (default $ICONLEARN_CACHE or ~/.cache/iconlearn)")
    add_common(p)
    p.set_defaults(func=run)


def load_inputs(args):
    from ..data.features import extract_features, load_features

    views, class_names = None, None
    if args.features:
        if not Path(args.features).exists():
            raise FileNotFoundError(f"--features file not found: {args.features}")
        if args.labels and not Path(args.labels).exists():
            raise FileNotFoundError(f"--labels file not found: {args.labels}")
        X, y = load_features(args.features, args.labels)
        name = Path(args.features).stem
    else:
        if args.labels:
            raise ValueError("--labels goes with --features; a --dataset brings its own labels")
        from ..data.datasets import load_dataset

        out = extract_features(args.dataset, args.encoder, split=args.split, size=args.size, n_views=args.views,
                               cache_root=args.cache_dir, verbose=not args.quiet)
        X, y = out[0], out[1]
        views = out[2] if args.views else None
        name = args.dataset
        class_names = load_dataset(args.dataset, args.split).class_names
    return name, X, y, views, class_names


def run(args) -> int:
    from ..report import compare, default_methods, markdown_table, write_report

    seeds = parse_seeds(args.seeds)
    name, X, y, views, class_names = load_inputs(args)
    k = args.n_clusters or (len(np.unique(y)) if y is not None else None)
    if k is None:
        raise ValueError("without --labels, say how many clusters with --n-clusters")
    if k < 2:
        raise ValueError(f"--n-clusters must be >= 2, got {k}")
    include = [m.strip() for m in args.methods.split(",")] if args.methods else None
    if y is None:
        include = include or ["I-Con"]
    methods = default_methods(k, args.epochs, args.device, include)
    out = Path(args.out or f"runs/cluster-{name}")
    print(f"{name}: {X.shape[0]} points x {X.shape[1]} features, {k} clusters, seeds {seeds}", flush=True)
    if y is None:  # no labels: cluster and save the assignments
        out.mkdir(parents=True, exist_ok=True)
        for mname, make in methods.items():
            labels = make(seeds[0]).fit_predict(X)
            path = out / f"labels-{mname.replace(' ', '_')}.npy"
            np.save(path, labels)
            print(f"{mname}: cluster sizes {np.bincount(labels, minlength=k).tolist()} -> {path}")
        return 0
    result = compare(X, y, methods, seeds, views=views, log=None if args.quiet else print)
    title = f"{name} ({X.shape[0]} points, {k} clusters, seeds {','.join(map(str, seeds))})"
    print()
    print(markdown_table(result["summary"], title))
    paths = write_report(out, result, X, y, title, class_names,
                         config={"dataset": name, "encoder": getattr(args, "encoder", None), "seeds": seeds,
                                 "n_clusters": k, "epochs": args.epochs, "argv": sys.argv[1:]})
    print(f"report: {paths['markdown'].parent}/ ({', '.join(p.name for p in paths.values())})")
    return 0

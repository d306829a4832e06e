"""``iconlearn cluster``: I-Con clustering against k-means, spectral, SCAN, TEMI and plain I-Con
on frozen features; prints a method x metric table and writes a report folder.

    iconlearn cluster --dataset 20newsgroups --encoder minilm --seeds 0,1,2 --out runs/20ng
    iconlearn cluster --features X.npy --labels y.npy --out runs/mine
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from .._runtime import Interrupted
from ._options import add_output, check_device, output_dir


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in str(text).split(",") if s.strip() != ""]
    except ValueError:
        raise ValueError(f"--seeds must be comma-separated integers such as 0,1,2, got {text!r}") from None
    if not seeds:
        raise ValueError("--seeds needs at least one seed")
    if not all(0 <= s < 2**32 for s in seeds):
        raise ValueError(f"--seeds must lie in [0, 2^32), got {text!r}")
    return seeds


def check_common(args) -> tuple[list[int], list[str] | None]:
    """The seeds and methods of ``cluster`` and ``demo``, with --epochs and --device checked, before
    any data is loaded."""
    from ..report import check_methods

    seeds = parse_seeds(args.seeds)
    include = [m.strip() for m in args.methods.split(",")] if args.methods else None
    check_methods(include)
    if args.epochs is not None and args.epochs < 1:
        raise ValueError(f"--epochs must be at least 1, got {args.epochs}")
    check_device(args.device)
    return seeds, include


def add_common(p) -> None:
    p.add_argument("--methods", default=None,
                   help="comma-separated subset of: I-Con, 'I-Con (paper)', k-means, spectral, SCAN, TEMI, 'I-Con (plain)' (default: all)")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated random seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the head-based methods (default: theirs)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    add_output(p, "report folder (results.md, results.json, labels.csv, confusion.png, map.png)")
    p.add_argument("--quiet", action="store_true", help="no per-run lines")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("cluster", help="cluster frozen features with I-Con and the baselines",
                              description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a dataset of docs/data.md: digits, mnist5k, fashion-mnist, 20newsgroups, "
                                       "reuters-r8, reuters-r52, pbmc68k, iris, wine, breast_cancer")
    src.add_argument("--features", help="your own features: an (N x D) array in a .npy, .npz or CSV file "
                                        "(e.g. the embeddings.npy of an iconlearn pretrain run)")
    p.add_argument("--labels", help="labels for --features: N numbers or names in a .npy, .npz or CSV file "
                                    "(needed for the metrics)")
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
        X, y, class_names = load_features(args.features, args.labels, return_names=True)
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


def compare_and_report(args, out: Path, X, y, methods, seeds, title: str, class_names, config: dict, views=None):
    """Every method with every seed on X: the table printed and the report written into ``out``;
    after a Ctrl-C, the report of the runs that finished (then :class:`Interrupted`)."""
    from ..report import compare, markdown_table, write_report

    result = compare(X, y, methods, seeds, views=views, log=None if args.quiet else print)
    print()
    print(markdown_table(result["summary"], title, result["counts"]))
    paths = write_report(out, result, X, y, title, class_names, config=config)
    print(f"report: {out}/ ({', '.join(p.name for p in paths.values())})")
    if result["interrupted"]:
        raise Interrupted(f"interrupted after {len(result['runs'])} of {result['planned']} runs; the report in {out}/ "
                          "holds the runs that finished")


def run(args) -> int:
    from ..report import default_methods

    seeds, include = check_common(args)
    if args.n_clusters is not None and args.n_clusters < 1:
        raise ValueError(f"--n-clusters must be >= 1, got {args.n_clusters}")
    if args.views < 0:
        raise ValueError(f"--views must be >= 0, got {args.views}")
    out = output_dir(args, f"runs/cluster-{Path(args.features).stem if args.features else args.dataset}")
    name, X, y, views, class_names = load_inputs(args)
    k = args.n_clusters if args.n_clusters is not None else (len(np.unique(y)) if y is not None else None)
    if k is None:
        raise ValueError("without --labels, say how many clusters with --n-clusters")
    if y is None:
        include = include or ["I-Con"]
    methods = default_methods(k, args.epochs, args.device, include)
    print(f"{name}: {X.shape[0]} points x {X.shape[1]} features, {k} clusters, seeds {seeds}", flush=True)
    if y is None:  # no labels: cluster, and keep every run's assignments
        from ..report import compare, save_labels

        result = compare(X, None, methods, seeds, views=views, log=None if args.quiet else print)
        save_labels(out / "labels.csv", result["labels"])
        print(f"predicted labels: {out / 'labels.csv'}")
        if result["interrupted"]:
            raise Interrupted(f"interrupted after {len(result['runs'])} of {result['planned']} runs; kept in "
                              f"{out / 'labels.csv'}: the runs that finished")
        return 0
    title = f"{name} ({X.shape[0]} points, {k} clusters, seeds {','.join(map(str, seeds))})"
    compare_and_report(args, out, X, y, methods, seeds, title, class_names, views=views,
                       config={"dataset": name, "encoder": getattr(args, "encoder", None), "seeds": seeds,
                               "n_clusters": k, "epochs": args.epochs, "argv": sys.argv[1:]})
    return 0

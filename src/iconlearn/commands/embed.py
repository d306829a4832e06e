"""``iconlearn embed``: SNE / t-SNE / parametric t-SNE of a dataset or of your own features;
writes the embedding (.npy), a scatter plot coloured by label (.png) and the metrics (.json).

    iconlearn embed --dataset fashion-mnist --method tsne --out runs/fmnist-tsne
    iconlearn embed --features X.npy --labels y.npy --method parametric --out runs/mine
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .._files import atomic_write, save_figure, save_npy
from .._runtime import Interrupted
from ._options import add_output, check_device, output_dir

METHODS = ("tsne", "sne", "parametric")


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("embed", help="t-SNE / SNE / parametric t-SNE embedding with plot and metrics",
                              description=__doc__.split("\n\n")[0])
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="a dataset of docs/data.md: digits, mnist5k, fashion-mnist, 20newsgroups (needs features), "
                                       "pbmc68k, iris, wine, breast_cancer")
    src.add_argument("--features", help="your own features: an (N x D) array in a .npy, .npz or CSV file")
    p.add_argument("--labels", help="labels for --features: N numbers or names in a .npy, .npz or CSV file "
                                    "(for colours and kNN accuracy)")
    p.add_argument("--method", default="tsne", choices=METHODS, help="tsne (default), sne or parametric")
    p.add_argument("--perplexity", type=float, default=30.0, help="default 30")
    p.add_argument("--dof", type=float, default=1.0, help="Student-t degrees of freedom (default 1)")
    p.add_argument("--pca", type=int, default=50, help="PCA to this many dimensions first when D is larger (0: off; default 50)")
    p.add_argument("--n", type=int, default=None, help="random subsample of this many points")
    p.add_argument("--split", default="all", help="train, test or all (default all)")
    p.add_argument("--n-iter", type=int, default=None,
                   help="tsne/sne: iterations after early exaggeration (default 500, as openTSNE); parametric: epochs (default 30)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--trust-queries", type=int, default=5000,
                   help="query points for trustworthiness (ranks against all points; default 5000)")
    add_output(p, "output folder (default runs/embed-<name>-<method>)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def load_inputs(args):
    if args.features:
        from ..data.features import load_features

        X, y = load_features(args.features, args.labels)
        return Path(args.features).stem, X, y, None
    if args.labels:
        raise ValueError("--labels goes with --features; a --dataset brings its own labels")
    from ..data.datasets import load_dataset

    ds = load_dataset(args.dataset, args.split)
    X = np.asarray(ds.X)
    if X.dtype == object or X.ndim == 1:
        raise ValueError(f"{args.dataset} is a text dataset: extract features first and pass --features")
    return args.dataset, X.reshape(len(X), -1), np.asarray(ds.y), ds.class_names


def make_estimator(args):
    from ..estimators.tsne import SNE, TSNE, ParametricTSNE

    kw = dict(perplexity=args.perplexity, random_state=args.seed, device=args.device, verbose=not args.quiet)
    if args.n_iter is not None and args.n_iter < 1:
        raise ValueError(f"--n-iter must be at least 1, got {args.n_iter}")
    if args.method == "parametric":
        return ParametricTSNE(dof=args.dof, **kw, **({} if args.n_iter is None else {"n_epochs": args.n_iter}))
    if args.n_iter is not None:
        kw["n_iter"] = args.n_iter
    return TSNE(dof=args.dof, **kw) if args.method == "tsne" else SNE(**kw)


def scatter(Y: np.ndarray, y, class_names, path: str, title: str) -> None:
    from .._plots import pyplot, scatter_labels

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 8), dpi=120)
    scatter_labels(ax, Y, y, class_names)
    ax.set_title(title)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def run(args) -> int:
    from ..metrics.embedding import knn_accuracy, neighborhood_preservation, trustworthiness

    if args.perplexity <= 0:
        raise ValueError(f"--perplexity must be positive, got {args.perplexity}")
    if args.pca < 0:
        raise ValueError(f"--pca must be >= 0 (0: off), got {args.pca}")
    check_device(args.device)
    out = output_dir(args, f"runs/embed-{Path(args.features).stem if args.features else args.dataset}-{args.method}")
    name, X, y, class_names = load_inputs(args)
    if X.ndim != 2:
        raise ValueError(f"features must be a 2-D (N x D) array, got shape {X.shape}")
    X = np.asarray(X, dtype=np.float32)
    rng = np.random.default_rng(args.seed)
    if args.n is not None:
        if args.n < 4:
            raise ValueError(f"--n must be at least 4, got {args.n}")
        if args.n < len(X):
            keep = np.sort(rng.choice(len(X), args.n, replace=False))
            X, y = X[keep], (y[keep] if y is not None else None)
    if not np.isfinite(X).all():
        raise ValueError("features contain NaN or Inf values; remove or impute them first")
    t0 = time.perf_counter()
    if args.pca and X.shape[1] > args.pca and len(X) > args.pca:
        from sklearn.decomposition import PCA

        X = PCA(args.pca, random_state=args.seed).fit_transform(X).astype(np.float32)
    t_pca = time.perf_counter() - t0
    est = make_estimator(args)
    Y = np.asarray(est.fit_transform(X))
    save_npy(out / "embedding.npy", Y)  # first: the expensive part is kept whatever happens next
    scatter(Y, y, class_names, str(out / "embedding.png"), f"{args.method} of {name} (n={len(X)})")
    k = min(10, len(X) // 2 - 1)
    metrics = {"dataset": name, "method": args.method, "n": int(len(X)), "input_dim": int(X.shape[1]),
               "perplexity": args.perplexity, "seed": args.seed, "seconds": {"pca": t_pca, **est.timings_},
               "kl_divergence": est.kl_divergence_, "n_iter": est.n_iter_}
    try:
        if k >= 1:
            metrics[f"trustworthiness_k{k}"] = trustworthiness(X, Y, k=k, n_queries=args.trust_queries,
                                                               random_state=args.seed)
            metrics[f"neighborhood_preservation_k{k}"] = neighborhood_preservation(X, Y, k=k)
            if y is not None:
                metrics[f"knn_accuracy_k{k}"] = knn_accuracy(Y, y, k=k)
    except KeyboardInterrupt:
        metrics["interrupted"] = True
    with atomic_write(out / "metrics.json") as f:
        f.write(json.dumps(metrics, indent=1, default=float))
    if metrics.get("interrupted"):
        raise Interrupted(f"interrupted while scoring; {out}/ holds embedding.npy, embedding.png and the metrics "
                          "that finished (metrics.json)")
    print(json.dumps(metrics, indent=1, default=float))
    print(f"wrote {out}/embedding.npy, embedding.png, metrics.json")
    return 0

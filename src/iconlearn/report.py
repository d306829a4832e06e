"""Clustering comparisons and their reports: a method x metric table (Markdown + JSON), a
confusion-matrix plot and a 2-D map of the features coloured by predicted cluster."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import atomic_write, save_figure
from ._validation import did_you_mean
from .metrics.clustering import clustering_scores, contingency, mean_std

METRICS = ("acc", "nmi", "ari", "ami")


def method_names() -> list[str]:
    from .estimators.baselines import BASELINES

    return ["I-Con", "I-Con (paper)", *BASELINES]


def check_methods(include) -> None:
    """``ValueError`` naming the first unknown method of ``include`` (with a did-you-mean)."""
    for name in include or ():
        if name not in method_names():
            raise ValueError(f"unknown method {name!r}{did_you_mean(name, method_names())}; "
                             f"choose from {method_names()}")


def default_methods(n_clusters: int, epochs: int | None = None, device="auto", include=None) -> dict[str, Callable]:
    """name -> factory(seed) for I-Con and every baseline, with their defaults."""
    from .estimators.baselines import BASELINES
    from .estimators.clustering import IConClustering

    check_methods(include)

    def head(cls):
        def make(seed):
            kw = {} if epochs is None else {"epochs": epochs}
            return cls(n_clusters, random_state=seed, device=device, **kw)
        return make

    methods = {"I-Con": head(IConClustering),
               "I-Con (paper)": lambda seed: IConClustering.paper(n_clusters, random_state=seed, device=device)}
    for name, cls in BASELINES.items():
        if name in ("k-means", "spectral"):
            methods[name] = (lambda c: lambda seed: c(n_clusters, random_state=seed))(cls)
        else:
            methods[name] = head(cls)
    if include:
        methods = {k: v for k, v in methods.items() if k in include}
    return methods


def compare(X, y, methods: dict[str, Callable], seeds=(0, 1, 2), views=None, log=print) -> dict:
    """Fit every method with every seed on the same features; returns runs and summaries.

    ``runs``: one dict per (method, seed) with the metrics and ``time`` (seconds);
    ``summary``: method -> metric -> (mean, std); ``labels``: method -> labels of its first seed;
    ``planned``: how many runs were asked for. Ctrl-C after some runs finished ends the comparison
    with those (``interrupted`` True) instead of losing them.
    """
    runs, labels, interrupted = [], {}, False
    try:
        for name, make in methods.items():
            for seed in seeds:
                model = make(seed)
                t0 = time.perf_counter()
                pred = model.fit_predict(X, views=views) if views is not None and _takes_views(model) else model.fit_predict(X)
                elapsed = time.perf_counter() - t0
                scores = clustering_scores(y, pred)
                runs.append({"method": name, "seed": int(seed), **scores, "time": elapsed})
                labels.setdefault(name, np.asarray(pred))
                if log:
                    log(f"  {name:<14} seed {seed}: acc {scores['acc']:.3f} nmi {scores['nmi']:.3f} "
                        f"ari {scores['ari']:.3f} ({elapsed:.1f}s)")
    except KeyboardInterrupt:
        if not runs:
            raise
        interrupted = True
    summary = {}
    for name in methods:
        rows = [{k: r[k] for k in (*METRICS, "time")} for r in runs if r["method"] == name]
        if rows:
            summary[name] = mean_std(rows)
    return {"runs": runs, "summary": summary, "labels": labels, "interrupted": interrupted,
            "planned": len(methods) * len(seeds)}


def _takes_views(model) -> bool:
    from .estimators.clustering import HeadClusterer

    return isinstance(model, HeadClusterer)


def markdown_table(summary: dict, title: str | None = None) -> str:
    """method x (accuracy, NMI, ARI, AMI, time) as a Markdown table of mean +/- std."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| method | Hungarian acc | NMI | ARI | AMI | time (s) |", "| --- | --- | --- | --- | --- | --- |"]
    for name, s in summary.items():
        cells = [f"{s[k][0]:.3f} ± {s[k][1]:.3f}" for k in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['time'][0]:.1f} |")
    return "\n".join(lines) + "\n"


def matched_confusion(y_true, y_pred) -> np.ndarray:
    """Confusion matrix (classes x clusters), clusters reordered by the Hungarian matching."""
    from scipy.optimize import linear_sum_assignment

    m = contingency(y_true, y_pred).T  # classes x clusters
    size = max(m.shape)
    padded = np.zeros((m.shape[0], size), dtype=m.dtype)
    padded[:, : m.shape[1]] = m
    _, cols = linear_sum_assignment(padded, maximize=True)
    order = list(cols) + [c for c in range(size) if c not in set(cols)]
    return padded[:, order][:, : max(m.shape[1], 1)]


def plot_confusion(y_true, y_pred, path: Path, class_names=None, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = matched_confusion(y_true, y_pred)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(4.0, 0.35 * cm.shape[0] + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xlabel("predicted cluster (matched order)")
    ax.set_ylabel("true class")
    if class_names is not None and len(class_names) == cm.shape[0] and cm.shape[0] <= 30:
        ax.set_yticks(range(cm.shape[0]), [str(c)[:24] for c in class_names], fontsize=7)
    ax.set_title(title or "confusion matrix (row-normalised)")
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def map_2d(X: np.ndarray, max_points: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A 2-D PCA map of (a random subset of) the features: (indices, coordinates)."""
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(X), size=min(max_points, len(X)), replace=False))
    Xs = np.asarray(X[idx], dtype=np.float64)  # float64: the norms of features of any scale
    Xs = Xs / np.maximum(np.linalg.norm(Xs, axis=1, keepdims=True), 1e-300)
    with np.errstate(divide="ignore", invalid="ignore"):  # identical points: no variance to explain
        return idx, PCA(2, random_state=seed).fit_transform(Xs)


def plot_map(X, labels, path: Path, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idx, Y = map_2d(X)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(Y[:, 0], Y[:, 1], c=np.asarray(labels)[idx], cmap="tab20", s=3, linewidths=0)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "features (2-D PCA), coloured by predicted cluster")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def write_report(out_dir, result: dict, X, y, title: str, class_names=None, config: dict | None = None,
                 best: str = "I-Con") -> dict[str, Path]:
    """Write ``results.md``, ``results.json``, ``confusion.png`` and ``map.png`` into ``out_dir``
    (the title says so when the comparison was interrupted)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if result.get("interrupted"):
        title += f" (interrupted: {len(result['runs'])} of {result['planned']} runs)"
    md = markdown_table(result["summary"], title)
    paths = {"markdown": out / "results.md", "json": out / "results.json",
             "confusion": out / "confusion.png", "map": out / "map.png"}
    with atomic_write(paths["markdown"]) as f:
        f.write(md)
    payload = {"title": title, "config": config or {}, "interrupted": bool(result.get("interrupted")), "runs": result["runs"],
               "summary": {m: {k: {"mean": v[0], "std": v[1]} for k, v in s.items()} for m, s in result["summary"].items()}}
    with atomic_write(paths["json"]) as f:
        f.write(json.dumps(payload, indent=1))
    name = best if best in result["labels"] else next(iter(result["labels"]))
    plot_confusion(y, result["labels"][name], paths["confusion"], class_names, f"{name}: {title}")
    plot_map(X, result["labels"][name], paths["map"], f"{name} clusters on the features (2-D PCA)")
    return paths

"""Clustering comparisons and their reports: a method x metric table (Markdown + JSON), the
predicted labels of every run (CSV), a confusion-matrix plot and a t-SNE map of the features
coloured by predicted cluster and by true class."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ._files import atomic_write, save_figure
from ._plots import label_name, pyplot, scatter_labels
from ._validation import did_you_mean
from .metrics.clustering import clustering_scores, match_clusters, mean_std

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

    ``runs``: one dict per (method, seed) with the metrics (none when ``y`` is None) and ``time``
    (seconds); ``summary``: method -> metric -> (mean, std); ``counts``: method -> finished runs;
    ``labels``: method -> seed -> predicted labels; ``planned``: how many runs were asked for.
    Ctrl-C after some runs finished ends the comparison with those (``interrupted`` True) instead
    of losing them.
    """
    runs, labels, interrupted = [], {}, False
    try:
        for name, make in methods.items():
            for seed in seeds:
                model = make(seed)
                t0 = time.perf_counter()
                pred = model.fit_predict(X, views=views) if views is not None and _takes_views(model) else model.fit_predict(X)
                elapsed = time.perf_counter() - t0
                pred = np.asarray(pred)
                scores = clustering_scores(y, pred) if y is not None else {}
                runs.append({"method": name, "seed": int(seed), **scores, "time": elapsed})
                labels.setdefault(name, {})[int(seed)] = pred
                if log:
                    log(f"  {name:<14} seed {seed}: " + (
                        f"acc {scores['acc']:.3f} nmi {scores['nmi']:.3f} ari {scores['ari']:.3f}" if scores else
                        f"cluster sizes {np.bincount(pred).tolist()}") + f" ({elapsed:.1f}s)")
    except KeyboardInterrupt:
        if not runs:
            raise
        interrupted = True
    summary, counts = {}, {}
    for name in methods:
        rows = [{k: r[k] for k in (*(METRICS if y is not None else ()), "time")} for r in runs if r["method"] == name]
        if rows:
            summary[name], counts[name] = mean_std(rows), len(rows)
    return {"runs": runs, "summary": summary, "counts": counts, "labels": labels, "interrupted": interrupted,
            "planned": len(methods) * len(seeds)}


def _takes_views(model) -> bool:
    from .estimators.clustering import HeadClusterer

    return isinstance(model, HeadClusterer)


def markdown_table(summary: dict, title: str | None = None, counts: dict | None = None) -> str:
    """method x (accuracy, NMI, ARI, AMI, time) as a Markdown table of mean ± std over the seeds
    (just the value for a method with one run in ``counts``)."""
    lines = [f"### {title}", ""] if title else []
    lines += ["| method | Hungarian acc | NMI | ARI | AMI | time (s) |", "| --- | --- | --- | --- | --- | --- |"]
    for name, s in summary.items():
        one = counts is not None and counts.get(name) == 1
        cells = [f"{s[k][0]:.3f}" if one else f"{s[k][0]:.3f} ± {s[k][1]:.3f}" for k in METRICS]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {s['time'][0]:.1f} |")
    return "\n".join(lines) + "\n"


def matched_confusion(y_true, y_pred) -> tuple[np.ndarray, list, list]:
    """(counts, classes, clusters): the confusion matrix, classes x clusters, with each class's
    Hungarian-matched cluster (:func:`~iconlearn.metrics.match_clusters`) in the class's column
    and unmatched clusters after them; ``clusters`` lists the cluster of each column."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = np.unique(y_true).tolist()
    by_class = {c: k for k, c in match_clusters(y_true, y_pred).items()}
    clusters = [by_class[c] for c in classes if c in by_class]
    clusters += [k for k in np.unique(y_pred).tolist() if k not in set(clusters)]
    column = {k: j for j, k in enumerate(clusters)}
    cm = np.zeros((len(classes), len(clusters)), dtype=np.int64)
    np.add.at(cm, (np.searchsorted(classes, y_true), [column[k] for k in y_pred.tolist()]), 1)
    return cm, classes, clusters


def plot_confusion(y_true, y_pred, path: Path, class_names=None, title: str = "") -> None:
    """The row-normalised confusion matrix (:func:`matched_confusion`): true classes by name down
    the side, each cluster under the name of the class it is matched to (or its number) along the
    bottom, a colour bar saying what the colours mean, the share in each cell up to 15 classes."""
    plt = pyplot()
    cm, classes, clusters = matched_confusion(y_true, y_pred)
    matched = {k: c for c, k in zip(classes, clusters)}
    share = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(4.0, 0.4 * max(cm.shape) + 2)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    names = [label_name(c, class_names)[:24] for c in classes]
    cols = [f"{k} → {label_name(matched[k], class_names)[:20]}" if k in matched else str(k) for k in clusters]
    small = max(cm.shape) <= 30
    ax.set_yticks(range(len(classes)), names if small else None, fontsize=7)
    ax.set_xticks(range(len(clusters)), cols if small else None, fontsize=7, rotation=60 if small else 0,
                  ha="right" if small else "center")
    if max(cm.shape) <= 15:
        for i, j in np.ndindex(*cm.shape):
            if cm[i, j]:
                ax.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=6,
                        color="white" if share[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted cluster → the class it is matched to")
    ax.set_ylabel("true class")
    ax.set_title(title or "confusion matrix", fontsize=9)
    bar = fig.colorbar(im, ax=ax, fraction=0.046)
    bar.set_label("share of the true class in the cluster")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def tsne_map(X, max_points: int = 5000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(indices, coordinates): :class:`iconlearn.TSNE` of (a random subset of) the features as the
    clusterers see them (:func:`~iconlearn.estimators.clustering.normalize_features` 'auto'),
    after PCA to 50 dimensions when there are more."""
    from sklearn.decomposition import PCA

    from .estimators.clustering import normalize_features
    from .estimators.tsne import TSNE

    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(X), size=min(max_points, len(X)), replace=False))
    Xs, _ = normalize_features(np.asarray(X[idx], dtype=np.float64), "auto")
    if Xs.shape[1] > 50 and len(Xs) > 50:
        Xs = PCA(50, random_state=seed).fit_transform(Xs)
    perplexity = float(min(30, (len(Xs) - 1) // 3))
    return idx, TSNE(perplexity=perplexity, random_state=seed).fit_transform(Xs)


def plot_map(X, y_true, y_pred, path: Path, class_names=None, title: str = "", seed: int = 0) -> None:
    """Two t-SNE panels of the features (:func:`tsne_map`): coloured by predicted cluster and by
    true class, a cluster in the colour of the class it is matched to, each with a legend."""
    plt = pyplot()
    idx, Y = tsne_map(X, seed=seed)
    y_true, y_pred = np.asarray(y_true)[idx], np.asarray(y_pred)[idx]
    classes = np.unique(y_true).tolist()
    by_class = {c: k for k, c in match_clusters(y_true, y_pred).items()}
    fig, ax = plt.subplots(1, 2, figsize=(13, 6.2))
    scatter_labels(ax[0], Y, y_pred, {k: f"{k} → {label_name(c, class_names)}" for c, k in by_class.items()},
                   "cluster → matched class", order=[by_class.get(c, None) for c in classes])
    scatter_labels(ax[1], Y, y_true, class_names, "true class", order=classes)
    ax[0].set_title("coloured by predicted cluster", fontsize=9)
    ax[1].set_title("coloured by true class", fontsize=9)
    fig.suptitle(title or f"t-SNE of the features ({len(idx)} points)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def save_labels(path: Path, labels: dict, y=None) -> None:
    """``labels.csv``: a column ``true`` (when ``y`` is given), then one column ``<method> seed <s>``
    for every run in ``labels`` (method -> seed -> predicted labels), one row per point."""
    cols = ({"true": np.asarray(y)} if y is not None else {}) | {
        f"{name} seed {seed}": pred for name, by_seed in labels.items() for seed, pred in by_seed.items()}
    with atomic_write(path) as f:
        csv.writer(f, lineterminator="\n").writerow(cols)
        np.savetxt(f, np.column_stack(list(cols.values())), fmt="%d", delimiter=",")


def write_report(out_dir, result: dict, X, y, title: str, class_names=None, config: dict | None = None,
                 best: str = "I-Con") -> dict[str, Path]:
    """Write ``results.md``, ``results.json``, ``labels.csv`` (every method and seed),
    ``confusion.png`` and ``map.png`` (of ``best``'s first seed, or the first method's) into
    ``out_dir`` (the title says so when the comparison was interrupted)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if result.get("interrupted"):
        title += f" (interrupted: {len(result['runs'])} of {result['planned']} runs)"
    md = markdown_table(result["summary"], title, result.get("counts"))
    paths = {"markdown": out / "results.md", "json": out / "results.json", "labels": out / "labels.csv",
             "confusion": out / "confusion.png", "map": out / "map.png"}
    with atomic_write(paths["markdown"]) as f:
        f.write(md)
    payload = {"title": title, "config": config or {}, "interrupted": bool(result.get("interrupted")), "runs": result["runs"],
               "summary": {m: {k: {"mean": v[0], "std": v[1]} for k, v in s.items()} for m, s in result["summary"].items()}}
    with atomic_write(paths["json"]) as f:
        f.write(json.dumps(payload, indent=1))
    save_labels(paths["labels"], result["labels"], y)
    name = best if best in result["labels"] else next(iter(result["labels"]))
    seed, pred = next(iter(result["labels"][name].items()))
    plot_confusion(y, pred, paths["confusion"], class_names, f"{name}, seed {seed}\n{title}")
    plot_map(X, y, pred, paths["map"], class_names, f"t-SNE of the features: {name} (seed {seed}) and the true classes")
    return paths

"""What the report figures share: pyplot on the non-interactive Agg backend, and a scatter plot
coloured by label with a legend that names the labels."""
from __future__ import annotations

import numpy as np

MAX_LEGEND = 20  # more labels than this: colours only, no legend


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (files only, no window)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def label_name(value, names) -> str:
    """``names[value]`` (a dict, or a list indexed by integer labels) where it has one, else the
    label itself as text."""
    if isinstance(names, dict):
        return str(names.get(value, value))
    if names is not None and np.issubdtype(type(value), np.integer) and 0 <= int(value) < len(names):
        return str(names[int(value)])
    return str(value)


def scatter_labels(ax, Y: np.ndarray, labels=None, names=None, legend_title: str | None = None,
                   order=None) -> None:
    """Points ``Y`` (N x 1 or N x 2) on ``ax``, one colour per label, and a legend naming each label
    (:func:`label_name`) up to :data:`MAX_LEGEND` labels; black points without labels. ``order``:
    the label values in colour order (a value absent from ``labels`` keeps its colour unused), so
    that two panels can give matching labels one colour; default the sorted labels."""
    Y = np.asarray(Y)
    if Y.shape[1] == 1:
        Y = np.concatenate([Y, np.zeros_like(Y)], 1)
    size = max(0.2, min(8.0, 20000.0 / max(len(Y), 1)))
    if labels is None:
        ax.scatter(Y[:, 0], Y[:, 1], s=size, c="k", linewidths=0, rasterized=True)
    else:
        labels = np.asarray(labels)
        present = np.unique(labels).tolist()
        values = present if order is None else [*order, *(v for v in present if v not in set(order))]
        cmap = pyplot().get_cmap("tab10" if len(values) <= 10 else "tab20")
        for i, v in enumerate(values):
            if v not in present:
                continue
            m = labels == v
            ax.scatter(Y[m, 0], Y[m, 1], s=size, color=cmap(i % cmap.N), linewidths=0, rasterized=True,
                       label=label_name(v, names))
        if len(present) <= MAX_LEGEND:
            ax.legend(title=legend_title, markerscale=max(1.0, 6.0 / size), fontsize=7, title_fontsize=8,
                      loc="best", frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])

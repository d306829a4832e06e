"""Clustering metrics: Hungarian accuracy, NMI, ARI, AMI."""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn import metrics as skm


def _as_labels(y, name: str) -> np.ndarray:
    arr = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise ValueError(f"{name} must hold integer labels")
        arr = arr.astype(np.int64)
    return arr


def _pair(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    truth, pred = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if truth.shape != pred.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {truth.shape[0]} and {pred.shape[0]}")
    if truth.size == 0:
        raise ValueError("y_true and y_pred are empty")
    return truth, pred


def _table(y_true, y_pred) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts, cluster values, class values): counts is n_clusters x n_classes over the distinct
    values present, in sorted order."""
    truth, pred = _pair(y_true, y_pred)
    classes, ti = np.unique(truth, return_inverse=True)
    clusters, pi = np.unique(pred, return_inverse=True)
    m = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(m, (pi, ti), 1)
    return m, clusters, classes


def contingency(y_true, y_pred) -> np.ndarray:
    """(n_pred_clusters x n_classes) counts over the distinct values present."""
    return _table(y_true, y_pred)[0]


def match_clusters(y_true, y_pred) -> dict:
    """The one-to-one map of predicted clusters to classes that matches the most points (Hungarian
    algorithm), as {cluster: class}. Surplus clusters (more clusters than classes) are matched to
    no class and are absent; with fewer clusters, surplus classes get no cluster."""
    m, clusters, classes = _table(y_true, y_pred)
    rows, cols = linear_sum_assignment(m, maximize=True)
    return {clusters[r].item(): classes[c].item() for r, c in zip(rows, cols)}


def hungarian_accuracy(y_true, y_pred) -> float:
    """Accuracy under the best one-to-one map from predicted clusters to classes
    (:func:`match_clusters`).

    Policy: when there are more predicted clusters than classes the surplus clusters are matched
    to no class and every point in them counts as an error (they are never dropped); with fewer
    clusters, unmatched classes are errors. This is the protocol of IIC, SCAN and TEMI.
    """
    m = contingency(y_true, y_pred)
    rows, cols = linear_sum_assignment(m, maximize=True)
    return float(m[rows, cols].sum() / m.sum())


def nmi(y_true, y_pred) -> float:
    """Normalised mutual information with the arithmetic-mean normaliser (scikit-learn's default)."""
    truth, pred = _pair(y_true, y_pred)
    return float(skm.normalized_mutual_info_score(truth, pred, average_method="arithmetic"))


def ari(y_true, y_pred) -> float:
    truth, pred = _pair(y_true, y_pred)
    return float(skm.adjusted_rand_score(truth, pred))


def ami(y_true, y_pred) -> float:
    """Adjusted mutual information (arithmetic normaliser)."""
    truth, pred = _pair(y_true, y_pred)
    return float(skm.adjusted_mutual_info_score(truth, pred, average_method="arithmetic"))


def clustering_scores(y_true, y_pred) -> dict[str, float]:
    """Hungarian accuracy, NMI, ARI and AMI in one dict."""
    return {"acc": hungarian_accuracy(y_true, y_pred), "nmi": nmi(y_true, y_pred),
            "ari": ari(y_true, y_pred), "ami": ami(y_true, y_pred)}


def mean_std(runs: list[dict[str, float]]) -> dict[str, tuple[float, float]]:
    """Mean and (population) standard deviation of each metric over seeds."""
    if not runs:
        raise ValueError("mean_std needs at least one run (got no runs)")
    keys = runs[0].keys()
    return {k: (float(np.mean([r[k] for r in runs])), float(np.std([r[k] for r in runs]))) for k in keys}

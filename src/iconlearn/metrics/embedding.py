"""Quality of an embedding, computed without N x N matrices.

* :func:`knn_accuracy`: k-nearest-neighbour classification accuracy (leave-one-out on the
  embedding itself, or reference -> test), plain or similarity-weighted votes
  (the weighted cosine kNN of InstDisc / DINO: votes exp(cos / T)).
* :func:`trustworthiness`: Venna & Kaski's trustworthiness (as ``sklearn.manifold.trustworthiness``),
  penalising embedding neighbours that are far in the input space by their input rank.
* :func:`neighborhood_preservation`: recall of the input kNN among the embedding kNN.

Neighbours come from :func:`iconlearn.neighbors.knn` (faiss when installed, chunked torch
otherwise); trustworthiness, which needs every rank, works in chunks of query rows against all
points. Memory stays O(chunk x N), never N x N.
"""
from __future__ import annotations

import numpy as np
import torch

from .. import _validation as V
from ..distances import chunk_rows, sq_distances
from ..neighbors import knn

_METRICS = ("euclidean", "cosine")


def _as_array(X, name: str, dtype=np.float32) -> np.ndarray:
    return V.check_array(X, name, min_samples=2, dtype=dtype)


def _check_metric(metric: str) -> str:
    if metric not in _METRICS:
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    return metric


def knn_accuracy(X, y, k: int = 10, X_test=None, y_test=None, metric: str = "euclidean",
                 weighted: bool = False, temperature: float = 0.07) -> float:
    """Accuracy of the k-nearest-neighbour classifier on embeddings.

    Without a test set every point is classified by its k nearest *other* points (leave-one-out);
    with ``X_test, y_test`` the test points are classified by their k nearest points of X.

    Args:
        X: (N x D) embeddings (numpy or torch); y: (N,) labels.
        k: neighbours per vote.
        metric: ``"euclidean"`` or ``"cosine"``.
        weighted: weight votes by similarity: exp(cos / temperature) for cosine (InstDisc/DINO's
            weighted kNN), 1 / distance for Euclidean (scikit-learn's ``weights="distance"``).
            Unweighted ties go to the smallest label, as in scikit-learn.
        temperature: the temperature of the cosine weights.

    Returns:
        The fraction of correctly classified points, in [0, 1].
    """
    _check_metric(metric)
    Xa = _as_array(X, "X")
    ya = _labels(y, Xa.shape[0], "y")
    V.check_int(k, "k", 1)
    V.check_positive(temperature, "temperature")
    if X_test is None:
        if y_test is not None:
            raise ValueError("y_test was given without X_test")
        if k >= Xa.shape[0]:
            raise ValueError(f"k must be smaller than the number of points for leave-one-out: k={k}, n={Xa.shape[0]}")
        dist, idx = knn(Xa, k, metric=metric)
        truth = ya
    else:
        if y_test is None:
            raise ValueError("X_test was given without y_test")
        Xt = V.check_array(X_test, "X_test", min_samples=1)
        if Xt.shape[1] != Xa.shape[1]:
            raise ValueError(f"X_test has {Xt.shape[1]} features but X has {Xa.shape[1]}")
        truth = _labels(y_test, Xt.shape[0], "y_test")
        if k > Xa.shape[0]:
            raise ValueError(f"k={k} is larger than the number of reference points ({Xa.shape[0]})")
        dist, idx = knn(Xt, k, y=Xa, metric=metric)
    classes, yi = np.unique(ya, return_inverse=True)
    if weighted:
        w = np.exp((1.0 - dist) / temperature - 1.0 / temperature) if metric == "cosine" else 1.0 / np.maximum(dist, 1e-12)
    else:
        w = np.ones_like(dist, dtype=np.float64)
    pred = _vote(yi[idx], w, len(classes))
    return float(np.mean(classes[pred] == truth))


def _labels(y, n: int, name: str) -> np.ndarray:
    if isinstance(y, torch.Tensor):
        y = y.detach().cpu().numpy()
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {y.shape}")
    if y.shape[0] != n:
        raise ValueError(f"{name} has {y.shape[0]} labels but there are {n} points; pass one label per row")
    return y


def _vote(neighbor_labels: np.ndarray, weights: np.ndarray, n_classes: int, step: int = 65536) -> np.ndarray:
    """argmax over classes of the summed weights of the neighbours' labels (first class on ties)."""
    out = np.empty(neighbor_labels.shape[0], dtype=np.int64)
    step = max(1, min(step, 2**24 // max(n_classes, 1)))
    for s in range(0, neighbor_labels.shape[0], step):
        lab, w = neighbor_labels[s:s + step], weights[s:s + step]
        votes = np.zeros((lab.shape[0], n_classes), dtype=np.float64)
        np.add.at(votes, (np.arange(lab.shape[0])[:, None], lab), w)
        out[s:s + step] = votes.argmax(1)
    return out


def _query_rows(n: int, n_queries: int | None, random_state) -> np.ndarray:
    if n_queries is None or n_queries >= n:
        return np.arange(n)
    V.check_int(n_queries, "n_queries", 1)
    return np.sort(np.random.default_rng(random_state).choice(n, n_queries, replace=False))


def _check_pair(X, Y, k: int) -> tuple[np.ndarray, np.ndarray]:
    Xa = _as_array(X, "X", dtype=np.float64)
    Ya = _as_array(Y, "Y", dtype=np.float64)
    if Xa.shape[0] != Ya.shape[0]:
        raise ValueError(f"X and Y must have the same number of rows, got {Xa.shape[0]} and {Ya.shape[0]}")
    V.check_int(k, "k", 1)
    if k >= Xa.shape[0] / 2:
        raise ValueError(f"k must be smaller than n / 2 = {Xa.shape[0] / 2}, got k={k}")
    return Xa, Ya


def trustworthiness(X, Y, k: int = 5, metric: str = "euclidean", n_queries: int | None = None,
                    random_state=0, dtype=torch.float64) -> float:
    """Trustworthiness of the embedding Y of X (Venna & Kaski 2001):

        T(k) = 1 - 2 / (n k (2n - 3k - 1)) * sum_i sum_{j in U_k(i)} (r(i, j) - k),

    where U_k(i) are the k nearest neighbours of i in Y that are not among its k nearest in X,
    and r(i, j) is the rank of j among i's neighbours in X (nearest = 1). Equal to
    ``sklearn.manifold.trustworthiness`` (ties aside), without its N x N distance matrix.

    Args:
        n_queries: if given, average over this many random points i (ranks still computed
            against all N points): an unbiased estimate of T(k) for large N.
        dtype: the precision of the input-space distances (float32 halves the time on large N).
    """
    _check_metric(metric)
    Xa, Ya = _check_pair(X, Y, k)
    n = Xa.shape[0]
    rows = _query_rows(n, n_queries, random_state)
    if metric == "cosine":
        Xa = Xa / np.maximum(np.linalg.norm(Xa, axis=1, keepdims=True), 1e-12)
    tx = torch.from_numpy(Xa).to(dtype)
    ty = torch.from_numpy(Ya).to(torch.float64)
    penalty = 0.0
    step = chunk_rows(n, budget=2**25)
    for s in range(0, len(rows), step):
        q = torch.from_numpy(rows[s:s + step])
        local = torch.arange(len(q))
        dx = sq_distances(tx[q], tx, floor=0.0)
        dy = sq_distances(ty[q], ty, floor=0.0)
        dx[local, q], dy[local, q] = float("inf"), float("inf")
        nn_x = torch.topk(dx, k, dim=1, largest=False).indices
        nn_y = torch.topk(dy, k, dim=1, largest=False).indices
        new = ~(nn_y[:, :, None] == nn_x[:, None, :]).any(-1)  # in Y's kNN, not in X's
        dx[local, q] = float("-inf")  # self counted once below, so rank(nearest) = 1
        d_need = dx.gather(1, nn_y)
        for m in range(k):
            sel = new[:, m]
            if bool(sel.any()):
                ranks = (dx[sel] < d_need[sel, m:m + 1]).sum(1)  # 1 (self) + points strictly nearer
                penalty += float((ranks - k).sum())
    n_eff = len(rows)
    return 1.0 - penalty * (2.0 / (n_eff * k * (2.0 * n - 3.0 * k - 1.0)))


def neighborhood_preservation(X, Y, k: int = 10, metric: str = "euclidean") -> float:
    """Mean over points of |kNN_X(i) & kNN_Y(i)| / k: the recall of the input-space k nearest
    neighbours among the embedding's k nearest neighbours (1 = every neighbourhood kept)."""
    _check_metric(metric)
    Xa, Ya = _check_pair(X, Y, k)
    _, nx = knn(Xa.astype(np.float32), k, metric=metric)
    _, ny = knn(Ya.astype(np.float32), k, metric="euclidean")
    hits = 0
    step = 65536
    for s in range(0, nx.shape[0], step):
        hits += int((nx[s:s + step, :, None] == ny[s:s + step, None, :]).any(-1).sum())
    return hits / (nx.shape[0] * k)

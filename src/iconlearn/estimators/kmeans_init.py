"""k-means warm start for linear clustering heads.

Each head starts at its own run of spherical k-means (k-means++ on the L2-normalised features,
one initialisation, centroids renormalised): the soft assignment

    logit_c(x) = cos(x, mu_c) / T,

with T set from the data so that the median point prefers its own centroid to the runner-up by
one logit (soft enough to move). The head's input may be normalised differently (e.g.
standardised); the head is the least-squares fit of these logits on its own input, exact when the
input is the L2-normalised features.

More k-means runs are started than heads are kept (:class:`iconlearn.IConClustering`'s ``n_init``):
after a short stretch of training the heads with the lowest loss go on. Training moves every head
by about the same amount, so the basin is set by the start, and the loss after a few epochs ranks
the starts better than their k-means inertia or the exact loss of their hard partitions
(:func:`iconlearn.cluster_likelihood.hard_partition_loss`) do (docs/clustering.md).
"""
from __future__ import annotations

import numpy as np


def spherical_kmeans_logits(X: np.ndarray, n_clusters: int, seed: int, max_rows: int = 20000) -> np.ndarray:
    """Soft spherical k-means logits (N x C) of the rows of X (one k-means++ run of
    scikit-learn on at most ``max_rows`` rows, then every row is assigned)."""
    from sklearn.cluster import KMeans

    Xh = X / np.maximum(np.linalg.norm(X, axis=1, keepdims=True), 1e-12)
    rng = np.random.default_rng(seed)
    fit_rows = Xh if len(Xh) <= max_rows else Xh[rng.choice(len(Xh), max_rows, replace=False)]
    km = KMeans(n_clusters, n_init=1, random_state=int(seed) % 2**31).fit(fit_rows)
    mu = km.cluster_centers_ / np.maximum(np.linalg.norm(km.cluster_centers_, axis=1, keepdims=True), 1e-12)
    cos = Xh @ mu.T.astype(Xh.dtype)
    two = -np.partition(-cos, 1, axis=1)[:, :2]
    T = max(float(np.median(two[:, 0] - two[:, 1])), 1e-6)
    return cos / T


def kmeans_heads(X: np.ndarray, Xn: np.ndarray, n_clusters: int, seeds) -> tuple[np.ndarray, np.ndarray]:
    """Weights (H x D x C) and biases (H x C) of linear heads on ``Xn`` (the heads' input: X
    normalised), one per seed, whose logits fit the soft spherical k-means logits of ``X`` in least
    squares. One solve for all heads: the design matrix [Xn, 1] is the same for every head."""
    L = np.concatenate([spherical_kmeans_logits(X, n_clusters, s) for s in seeds], 1).astype(np.float64)
    A = np.hstack([Xn.astype(np.float64), np.ones((len(Xn), 1))])
    coef = np.linalg.lstsq(A, L, rcond=None)[0].reshape(A.shape[1], len(seeds), n_clusters).transpose(1, 0, 2)
    return coef[:, :-1].astype(np.float32), coef[:, -1].astype(np.float32)

"""Baselines for the I-Con clustering benchmark, in the same harness (same features, batches,
heads and head selection as :class:`iconlearn.estimators.clustering.IConClustering`).

All see the same normalised features as I-Con (``normalize``, default ``"auto"``).

- :class:`KMeansClustering`: k-means (scikit-learn, k-means++ with ``n_init`` restarts) on the
  normalised features made unit rows (spherical geometry, the one the kNN graph uses).
- :class:`SpectralClusteringBaseline`: normalized spectral clustering of the symmetrised cosine
  kNN graph (scikit-learn, LOBPCG: runs on all 70,000 Fashion-MNIST points).
- :class:`SCANClustering`: SCAN's loss (Van Gansbeke et al. 2020, eq. 2):
  -mean log <Phi(x), Phi(x')> - lambda H(mean Phi), lambda = 5, x' a kNN neighbour (or view).
- :class:`TEMIClustering`: TEMI's loss (Adaloglou et al. 2023, eq. 8-9): for pairs (x, x'),
  -w(x, x') log sum_k (q_s(k|x) q_t(k|x'))^beta / p~(k), w = sum_k q_t(k|x) q_t(k|x'),
  beta = 0.6, q_t from an EMA teacher, p~ an EMA of the teacher's marginal; symmetrised. Its
  heads are cosine heads (weight-normalised last layer, as TEMI's DINO head): with plain linear
  logits the 0.1 / 0.04 temperatures make the teacher one-hot from the first step and TEMI
  reinforces its random start (digits: 0.40 Hungarian accuracy with linear heads, 0.64 cosine).
- :class:`PlainIConClustering`: the I-Con clusterer without debiasing or walks (alpha = 0,
  kNN p only): mutual-information clustering, Theorem 7.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from .. import _validation as V
from ..graph_partition import symmetric_knn_graph
from ..neighbors import knn
from .base import Clusterer, Timer, resolve_seed
from .clustering import HeadClusterer, IConClustering, normalize_features

_EPS = 1e-8


class _Classic(Clusterer):
    def _check(self, X) -> np.ndarray:
        X = self._validate(X, reset=True)
        self._check_n_clusters(len(X))
        return X

    def fit_predict(self, X, y=None, views=None) -> np.ndarray:
        return self.fit(X).labels_


class KMeansClustering(_Classic):
    """k-means on the normalised features (``normalize``, as :class:`IConClustering`'s), made unit
    rows: the cosine geometry of the kNN graph (spherical k-means)."""

    def __init__(self, n_clusters: int = 10, n_init: int = 10, normalize: str | None = "auto", random_state=None):
        self.n_clusters, self.n_init, self.normalize, self.random_state = n_clusters, n_init, normalize, random_state

    def _unit_rows(self, X, stats=None):
        Xn, stats = normalize_features(X, self.normalize, stats)
        return Xn / np.maximum(np.linalg.norm(Xn, axis=1, keepdims=True), 1e-12), stats

    def fit(self, X, y=None, views=None):
        from sklearn.cluster import KMeans

        timer = Timer()
        X = self._check(X)
        Xu, self.norm_stats_ = self._unit_rows(X)
        self.model_ = KMeans(self.n_clusters, n_init=self.n_init, random_state=resolve_seed(self.random_state)).fit(Xu)
        self.labels_ = self.model_.labels_
        self.fit_time_ = timer.elapsed()
        return self

    def predict(self, X) -> np.ndarray:
        self._check_fitted("model_")
        return self.model_.predict(self._unit_rows(self._validate(X), self.norm_stats_)[0])


class SpectralClusteringBaseline(_Classic):
    """Normalized spectral clustering (Shi and Malik 2000) of the symmetrised cosine kNN graph of
    the normalised features, by scikit-learn with a sparse eigensolver: LOBPCG (a block method:
    exact on graphs with several components, and about a minute on all 70,000 Fashion-MNIST points,
    where ARPACK's shift-invert mode factorises the Laplacian), then ``cluster_qr`` assignment
    (Damle, Minden and Ying 2019)."""

    def __init__(self, n_clusters: int = 10, n_neighbors: int = 10, normalize: str | None = "auto", random_state=None):
        self.n_clusters, self.n_neighbors, self.normalize, self.random_state = n_clusters, n_neighbors, normalize, random_state

    def fit(self, X, y=None, views=None):
        from sklearn.cluster import SpectralClustering

        timer = Timer()
        X = self._check(X)
        n = X.shape[0]
        if self.n_clusters == 1:  # the trivial answer, as scikit-learn's KMeans gives
            self.labels_, self.fit_time_ = np.zeros(n, dtype=np.int64), timer.elapsed()
            return self
        V.check_int(self.n_neighbors, "n_neighbors", 1, n - 1)
        Xn, _ = normalize_features(X, self.normalize)
        _, idx = knn(Xn, self.n_neighbors, metric="cosine")
        model = SpectralClustering(self.n_clusters, affinity="precomputed", eigen_solver="lobpcg",
                                   assign_labels="cluster_qr", random_state=resolve_seed(self.random_state))
        self.labels_ = model.fit_predict(symmetric_knn_graph(idx))
        self.fit_time_ = timer.elapsed()
        return self


class SCANClustering(HeadClusterer):
    """SCAN's clustering step on frozen features: neighbour consistency + entropy (weight 5)."""

    def __init__(self, n_clusters: int = 10, n_neighbors: int = 3, entropy_weight: float = 5.0, n_heads: int = 5,
                 hidden: int = 0, epochs: int = 20, batch_size: int | str = "auto", neighbors_per_anchor: int = 2,
                 lr: float = 1e-2, weight_decay: float = 0.0, normalize: str | None = "auto", device="auto",
                 random_state: int | None = None, verbose: bool = False, min_steps: int = 300,
                 max_steps: int | None = 2000):
        self.n_clusters, self.n_neighbors, self.entropy_weight = n_clusters, n_neighbors, entropy_weight
        self.n_heads, self.hidden, self.epochs, self.batch_size = n_heads, hidden, epochs, batch_size
        self.neighbors_per_anchor, self.lr, self.weight_decay = neighbors_per_anchor, lr, weight_decay
        self.normalize, self.device, self.random_state, self.verbose = normalize, device, random_state, verbose
        self.min_steps, self.max_steps = min_steps, max_steps

    walks, binarize_walks, ema_decay = 0, False, None

    def _head_losses(self, probs: Tensor, probs_t, batch) -> Tensor:
        B = batch.partners.shape[0]
        anchor = probs[:, :B]  # H x B x C
        partner = probs[:, batch.partners]  # H x B x m x C
        consistency = -(anchor[:, :, None, :] * partner).sum(-1).clamp_min(_EPS).log().mean((1, 2))
        mean = anchor.mean(1)
        entropy = -(mean * mean.clamp_min(_EPS).log()).sum(-1)
        return consistency - self.entropy_weight * entropy


class TEMIClustering(HeadClusterer):
    """TEMI (weighted PMI^beta with an EMA teacher) on frozen features."""

    _uses_teacher = True
    _cosine_heads = True  # TEMI's (DINO's) weight-normalised head: logits are cosines, then / temperature

    def __init__(self, n_clusters: int = 10, n_neighbors: int = 3, beta: float = 0.6, ema_decay: float = 0.99,
                 marginal_momentum: float = 0.9, student_temperature: float = 0.1, teacher_temperature: float = 0.04,
                 n_heads: int = 5, hidden: int = 0, epochs: int = 20, batch_size: int | str = "auto",
                 neighbors_per_anchor: int = 2, lr: float = 1e-2, weight_decay: float = 0.0,
                 normalize: str | None = "auto", device="auto", random_state: int | None = None, verbose: bool = False,
                 min_steps: int = 300, max_steps: int | None = 2000):
        self.n_clusters, self.n_neighbors, self.beta, self.ema_decay = n_clusters, n_neighbors, beta, ema_decay
        self.marginal_momentum = marginal_momentum
        self.student_temperature, self.teacher_temperature = student_temperature, teacher_temperature
        self.n_heads, self.hidden, self.epochs, self.batch_size = n_heads, hidden, epochs, batch_size
        self.neighbors_per_anchor, self.lr, self.weight_decay = neighbors_per_anchor, lr, weight_decay
        self.normalize, self.device, self.random_state, self.verbose = normalize, device, random_state, verbose
        self.min_steps, self.max_steps = min_steps, max_steps

    walks, binarize_walks = 0, False

    def _check_params(self, n: int) -> None:
        super()._check_params(n)
        V.check_positive(self.beta, "beta")
        V.check_alpha(self.marginal_momentum, "marginal_momentum")
        V.check_positive(self.student_temperature, "student_temperature")
        V.check_positive(self.teacher_temperature, "teacher_temperature")

    def _init_state(self, device) -> None:
        self._marginal = torch.full((self.n_heads, 1, self.n_clusters), 1.0 / self.n_clusters, device=device)

    def _assign(self, logits: Tensor, teacher: bool) -> Tensor:
        t = self.teacher_temperature if teacher else self.student_temperature
        return torch.softmax(logits / t, dim=-1)

    def _pmi(self, qs: Tensor, qt: Tensor) -> Tensor:
        """-w log sum_k (q_s q_t)^beta / p~ for aligned pairs (H x P x C) -> (H,)."""
        w = (qt[0] * qt[1]).sum(-1)  # teacher agreement weight, no gradient (teacher)
        inner = ((qs * qt[1]).clamp_min(_EPS) ** self.beta / self._marginal).sum(-1)
        return -(w * inner.log()).mean(-1)

    def _head_losses(self, probs: Tensor, probs_t: Tensor, batch) -> Tensor:
        B = batch.partners.shape[0]
        m = batch.partners.shape[1]
        a_rows = torch.arange(B, device=probs.device).repeat_interleave(m)
        p_rows = batch.partners.reshape(-1)
        s_a, s_p = probs[:, a_rows], probs[:, p_rows]
        t_a, t_p = probs_t[:, a_rows], probs_t[:, p_rows]
        loss = 0.5 * (self._pmi(s_a, (t_a, t_p)) + self._pmi(s_p, (t_p, t_a)))
        with torch.no_grad():
            batch_marginal = probs_t[:, :B].mean(1, keepdim=True)
            m = self.marginal_momentum
            self._marginal = m * self._marginal + (1 - m) * batch_marginal  # new tensor: the old one is in the graph
        return loss


class PlainIConClustering(IConClustering):
    """I-Con clustering without debiasing or walks: p uniform over the k = 3 nearest neighbours,
    q the shared cluster likelihood (mutual-information clustering, Theorem 7)."""

    def __init__(self, n_clusters: int = 10, n_neighbors: int = 3, walks: int = 0, binarize_walks: bool = False,
                 alpha_p: float = 0.0, alpha_q: float = 0.0, ema_decay: float | None = None, n_heads: int = 5,
                 hidden: int = 0, epochs: int = 20, batch_size: int | str = "auto", neighbors_per_anchor: int = 2,
                 lr: float = 1e-2, weight_decay: float = 0.0, normalize: str | None = "auto", device="auto",
                 random_state: int | None = None, verbose: bool = False, init: str = "random", min_steps: int = 300,
                 prune_steps: int = 50, refine: bool = False, max_steps: int | None = 2000):
        super().__init__(n_clusters, n_neighbors, walks, binarize_walks, alpha_p, alpha_q, ema_decay, n_heads, hidden,
                         epochs, batch_size, neighbors_per_anchor, lr, weight_decay, normalize, init, device=device,
                         random_state=random_state, verbose=verbose, min_steps=min_steps, prune_steps=prune_steps,
                         refine=refine, max_steps=max_steps)


BASELINES = {
    "k-means": KMeansClustering,
    "spectral": SpectralClusteringBaseline,
    "SCAN": SCANClustering,
    "TEMI": TEMIClustering,
    "I-Con (plain)": PlainIConClustering,
}

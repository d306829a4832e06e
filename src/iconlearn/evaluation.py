"""Evaluation of a frozen encoder, a layer above the metrics and the estimators: the probes of
:mod:`iconlearn.metrics.probe` (kNN accuracy, linear probe) on its features, and I-Con clustering
(:class:`iconlearn.IConClustering`) of them scored by Hungarian accuracy, NMI, ARI and AMI.
"""
from __future__ import annotations

import numpy as np
from torch import nn

from ._validation import check_array
from .estimators.clustering import IConClustering
from .metrics.clustering import clustering_scores
from .metrics.probe import extract_features, knn_probe, linear_probe

__all__ = ["cluster_probe", "evaluate_encoder", "evaluate_features"]


def cluster_probe(X, y, n_clusters: int | None = None, seed: int = 0, **params) -> dict:
    """I-Con clustering (:class:`iconlearn.IConClustering`, ``params`` passed to it) of the features:
    Hungarian accuracy, NMI, ARI, AMI."""
    y = np.asarray(y)
    k = int(n_clusters or len(np.unique(y)))
    pred = IConClustering(n_clusters=k, random_state=seed, **params).fit_predict(check_array(X, "X"))
    scores = clustering_scores(y, pred)
    return {f"cluster_{name}": float(v) for name, v in scores.items()}


def evaluate_features(train_features, y_train, test_features, y_test, knn_k: int = 20, probe: bool = True,
                      cluster: bool = False, n_clusters: int | None = None, seed: int = 0,
                      probe_backend: str = "sklearn", device=None) -> dict:
    """The frozen-encoder metrics of features already extracted: ``knn_acc``, ``linear_acc``
    (``probe``) and ``cluster_*`` (``cluster``, on the test features)."""
    out = {"knn_acc": knn_probe(train_features, y_train, test_features, y_test, k=knn_k)}
    if probe:
        out["linear_acc"] = linear_probe(train_features, y_train, test_features, y_test, seed=seed,
                                         backend=probe_backend, device=device)
    if cluster:
        out.update(cluster_probe(test_features, y_test, n_clusters, seed))
    return out


def evaluate_encoder(encoder, train_images, y_train, test_images, y_test, knn_k: int = 20, probe: bool = True,
                     cluster: bool = False, n_clusters: int | None = None, batch_size: int = 512, seed: int = 0,
                     progress: bool = False, probe_backend: str = "sklearn") -> dict:
    """All the frozen-encoder metrics (:func:`evaluate_features`) of ``encoder``'s features of the
    images: ``knn_acc``, ``linear_acc`` and optionally ``cluster_*``."""
    Ftr = extract_features(encoder, train_images, batch_size, progress=progress)
    Fte = extract_features(encoder, test_images, batch_size, progress=progress)
    dev = next(encoder.parameters()).device if isinstance(encoder, nn.Module) else None
    return evaluate_features(Ftr, y_train, Fte, y_test, knn_k, probe, cluster, n_clusters, seed, probe_backend, dev)

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

__all__ = ["cluster_probe", "evaluate_encoder"]


def cluster_probe(X, y, n_clusters: int | None = None, seed: int = 0, **params) -> dict:
    """I-Con clustering (:class:`iconlearn.IConClustering`, ``params`` passed to it) of the features:
    Hungarian accuracy, NMI, ARI, AMI."""
    y = np.asarray(y)
    k = int(n_clusters or len(np.unique(y)))
    pred = IConClustering(n_clusters=k, random_state=seed, **params).fit_predict(check_array(X, "X"))
    scores = clustering_scores(y, pred)
    return {f"cluster_{name}": float(v) for name, v in scores.items()}


def evaluate_encoder(encoder, train_images, y_train, test_images, y_test, knn_k: int = 20, probe: bool = True,
                     cluster: bool = False, n_clusters: int | None = None, batch_size: int = 512, seed: int = 0,
                     progress: bool = False, probe_backend: str = "sklearn") -> dict:
    """All the frozen-encoder metrics: ``knn_acc``, ``linear_acc`` and optionally ``cluster_*``."""
    Ftr = extract_features(encoder, train_images, batch_size, progress=progress)
    Fte = extract_features(encoder, test_images, batch_size, progress=progress)
    out = {"knn_acc": knn_probe(Ftr, y_train, Fte, y_test, k=knn_k)}
    if probe:
        dev = next(encoder.parameters()).device if isinstance(encoder, nn.Module) else None
        out["linear_acc"] = linear_probe(Ftr, y_train, Fte, y_test, seed=seed, backend=probe_backend, device=dev)
    if cluster:
        out.update(cluster_probe(Fte, y_test, n_clusters, seed))
    return out

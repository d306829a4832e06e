"""Evaluation of a frozen encoder: linear probe, kNN accuracy and I-Con clustering of its features.

The standard protocols of self-supervised learning (SimCLR, solo-learn): the encoder is frozen,
features are extracted once, then

* linear probe: multinomial logistic regression on standardised train features, accuracy on
  held-out features;
* kNN: weighted cosine kNN with k = 20 (InstDisc / DINO), via :func:`iconlearn.metrics.embedding.knn_accuracy`;
* clustering: :class:`iconlearn.IConClustering` on the held-out features, Hungarian accuracy and NMI.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .. import _validation as V

__all__ = ["extract_features", "linear_probe", "knn_probe", "cluster_probe", "evaluate_encoder"]


@torch.no_grad()
def extract_features(encoder, images, batch_size: int = 512, device=None, progress: bool = False) -> np.ndarray:
    """(N x D) float32 features of ``encoder`` (a module or callable; a module with a ``features``
    method, such as :class:`iconlearn.nn.encoders.ContrastiveModel`, is evaluated through it) on
    float images in [0, 1] or uint8 images (N x C x H x W, or N x H x W)."""
    from ..data.augment import to_image_tensor

    V.check_int(batch_size, "batch_size", low=1)
    imgs = images if isinstance(images, Tensor) and images.ndim == 4 and images.is_floating_point() \
        else to_image_tensor(images)
    fn = encoder.features if hasattr(encoder, "features") else encoder
    was_training = encoder.training if isinstance(encoder, nn.Module) else None
    if isinstance(encoder, nn.Module):
        encoder.eval()
        if device is None:
            p = next(encoder.parameters(), None)
            device = p.device if p is not None else "cpu"
    device = torch.device(device or "cpu")
    out = []
    rng = range(0, imgs.shape[0], batch_size)
    if progress:
        from tqdm.auto import tqdm

        rng = tqdm(rng, desc="features", leave=False)
    try:
        for s in rng:
            x = imgs[s:s + batch_size].to(device, torch.float32)
            out.append(fn(x).float().cpu())
    finally:
        if was_training:
            encoder.train()
    feats = torch.cat(out).numpy()
    if not np.isfinite(feats).all():
        raise ValueError("the encoder produced NaN or Inf features; the training probably diverged")
    return feats


def linear_probe(X_train, y_train, X_test, y_test, C: float = 1.0, max_iter: int = 1000, seed: int = 0) -> float:
    """Test accuracy of L2-regularised multinomial logistic regression (scikit-learn, lbfgs) fitted
    on standardised frozen train features."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    Xtr = V.check_array(X_train, "X_train", min_samples=2)
    Xte = V.check_array(X_test, "X_test")
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    if len(ytr) != len(Xtr) or len(yte) != len(Xte):
        raise ValueError(f"got {len(Xtr)} train features with {len(ytr)} labels and {len(Xte)} test features "
                         f"with {len(yte)} labels; pass one label per row")
    if Xtr.shape[1] != Xte.shape[1]:
        raise ValueError(f"train features have {Xtr.shape[1]} columns but test features {Xte.shape[1]}")
    scaler = StandardScaler().fit(Xtr)
    clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    clf.fit(scaler.transform(Xtr), ytr)
    return float((clf.predict(scaler.transform(Xte)) == yte).mean())


def knn_probe(X_train, y_train, X_test, y_test, k: int = 20, temperature: float = 0.07) -> float:
    """Weighted cosine kNN accuracy of the test features against the train features."""
    from .embedding import knn_accuracy

    return knn_accuracy(X_train, y_train, k=k, X_test=X_test, y_test=y_test, metric="cosine", weighted=True,
                        temperature=temperature)


def cluster_probe(X, y, n_clusters: int | None = None, seed: int = 0) -> dict:
    """I-Con clustering (:class:`iconlearn.IConClustering`) of the features: Hungarian accuracy, NMI, ARI."""
    import iconlearn

    from .clustering import clustering_scores

    y = np.asarray(y)
    k = int(n_clusters or len(np.unique(y)))
    pred = iconlearn.IConClustering(n_clusters=k, random_state=seed).fit_predict(V.check_array(X, "X"))
    scores = clustering_scores(y, pred)
    return {f"cluster_{name}": float(v) for name, v in scores.items()}


def evaluate_encoder(encoder, train_images, y_train, test_images, y_test, knn_k: int = 20, probe: bool = True,
                     cluster: bool = False, n_clusters: int | None = None, batch_size: int = 512, seed: int = 0,
                     progress: bool = False) -> dict:
    """All the frozen-encoder metrics: ``knn_acc``, ``linear_acc`` and optionally ``cluster_*``."""
    Ftr = extract_features(encoder, train_images, batch_size, progress=progress)
    Fte = extract_features(encoder, test_images, batch_size, progress=progress)
    out = {"knn_acc": knn_probe(Ftr, y_train, Fte, y_test, k=knn_k)}
    if probe:
        out["linear_acc"] = linear_probe(Ftr, y_train, Fte, y_test, seed=seed)
    if cluster:
        out.update(cluster_probe(Fte, y_test, n_clusters, seed))
    return out

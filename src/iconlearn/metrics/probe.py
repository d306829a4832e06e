"""Probes of frozen features, the standard protocols of self-supervised learning (SimCLR,
solo-learn): features are extracted once (:func:`extract_features`), then

* linear probe: multinomial logistic regression on standardised train features, accuracy on
  held-out features;
* kNN: weighted cosine kNN with k = 20 (InstDisc / DINO), via :func:`iconlearn.metrics.embedding.knn_accuracy`.

Evaluating an encoder with all of them and with a clusterer (:func:`evaluate_encoder`,
:func:`cluster_probe`) is a layer above the metrics and the estimators: :mod:`iconlearn.evaluation`.
Both names still import from here.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from .. import _validation as V

__all__ = ["extract_features", "linear_probe", "torch_logistic_regression", "knn_probe"]


def __getattr__(name: str):
    """``evaluate_encoder`` and ``cluster_probe`` live in :mod:`iconlearn.evaluation`; they resolve
    here too, on first use, so that ``from iconlearn.metrics.probe import evaluate_encoder`` works."""
    if name in ("evaluate_encoder", "cluster_probe"):
        from .. import evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
            param = next(encoder.parameters(), None)
            device = param.device if param is not None else "cpu"
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


def linear_probe(X_train, y_train, X_test, y_test, C: float = 1.0, max_iter: int = 1000, seed: int = 0,
                 backend: str = "sklearn", device=None) -> float:
    """Test accuracy of L2-regularised multinomial logistic regression fitted on standardised
    frozen train features: the objective C sum_i CE_i + ||W||^2 / 2 of scikit-learn.

    ``backend="sklearn"``: ``LogisticRegression`` (lbfgs). ``backend="torch"``: the same objective
    minimised by full-batch L-BFGS in torch (on ``device``, e.g. a GPU: seconds for 60,000 rows).
    """
    Xtr = V.check_array(X_train, "X_train", min_samples=2)
    Xte = V.check_array(X_test, "X_test")
    ytr, yte = np.asarray(y_train), np.asarray(y_test)
    if len(ytr) != len(Xtr) or len(yte) != len(Xte):
        raise ValueError(f"got {len(Xtr)} train features with {len(ytr)} labels and {len(Xte)} test features "
                         f"with {len(yte)} labels; pass one label per row")
    if Xtr.shape[1] != Xte.shape[1]:
        raise ValueError(f"train features have {Xtr.shape[1]} columns but test features {Xte.shape[1]}")
    V.check_positive(C, "C")
    if backend == "sklearn":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        scaler = StandardScaler().fit(Xtr)
        clf = LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
        clf.fit(scaler.transform(Xtr), ytr)
        return float((clf.predict(scaler.transform(Xte)) == yte).mean())
    if backend == "torch":
        proba, classes = torch_logistic_regression(Xtr, ytr, Xte, C, max_iter, device)
        return float((classes[proba.argmax(1)] == yte).mean())
    raise ValueError(f"backend must be 'sklearn' or 'torch', got {backend!r}")


def torch_logistic_regression(X_train, y_train, X_test, C: float = 1.0, max_iter: int = 1000, device=None,
                              dtype=torch.float32) -> tuple[np.ndarray, np.ndarray]:
    """(test class probabilities, classes) of multinomial logistic regression on standardised
    features, minimising mean_i CE_i + ||W||^2 / (2 C N) (scikit-learn's objective over C N) by L-BFGS."""
    import torch.nn.functional as F

    device = torch.device(device or "cpu")
    classes, y = np.unique(np.asarray(y_train), return_inverse=True)
    X = torch.as_tensor(np.asarray(X_train), device=device, dtype=dtype)
    mean, std = X.mean(0), X.std(0, unbiased=False)
    std = torch.where(std > 0, std, torch.ones_like(std))
    X = (X - mean) / std
    Y = torch.as_tensor(y, device=device)
    W = torch.zeros(X.shape[1], len(classes), device=device, dtype=dtype, requires_grad=True)
    b = torch.zeros(len(classes), device=device, dtype=dtype, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1.0, max_iter=max_iter, history_size=20, line_search_fn="strong_wolfe",
                            tolerance_grad=1e-7, tolerance_change=1e-10)
    reg = 1.0 / (2.0 * C * X.shape[0])

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(X @ W + b, Y) + reg * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        Xt = (torch.as_tensor(np.asarray(X_test), device=device, dtype=dtype) - mean) / std
        proba = torch.softmax(Xt @ W + b, 1)
    return proba.cpu().numpy(), classes


def knn_probe(X_train, y_train, X_test, y_test, k: int = 20, temperature: float = 0.07) -> float:
    """Weighted cosine kNN accuracy of the test features against the train features."""
    from .embedding import knn_accuracy

    return knn_accuracy(X_train, y_train, k=k, X_test=X_test, y_test=y_test, metric="cosine", weighted=True,
                        temperature=temperature)

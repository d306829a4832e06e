"""Initial embeddings (openTSNE's ``initialization``): PCA rescaled so that the first coordinate
has standard deviation 1e-4 (plus a 1% jitter so that duplicates do not coincide), or random
Gaussian with the same scale."""
from __future__ import annotations

import numpy as np
import torch

from .._runtime import draw_seed, torch_seeded

TARGET_STD = 1e-4


def rescale(y: np.ndarray, target_std: float = TARGET_STD) -> np.ndarray:
    std = float(np.std(y[:, 0]))
    return y * (target_std / std) if std > 0 else y


def jitter(y: np.ndarray, rng: np.random.Generator, scale: float = 0.01) -> np.ndarray:
    std = float(np.std(y[:, 0])) or TARGET_STD
    return y + rng.normal(0.0, std * scale, y.shape)


def pca_init(X: np.ndarray, n_components: int, random_state=None) -> np.ndarray:
    """Top principal components (randomised SVD in torch for large inputs), rescaled and jittered.

    The sign of every component is fixed (largest loading positive) so that runs are reproducible.
    """
    rng = np.random.default_rng(random_state)
    Xt = torch.as_tensor(X, dtype=torch.float64 if X.shape[0] * X.shape[1] <= 2e6 else torch.float32)
    Xt = Xt - Xt.mean(0)
    q = min(n_components, *Xt.shape)
    if min(Xt.shape) <= 200:
        _, _, vh = torch.linalg.svd(Xt, full_matrices=False)
        v = vh[:q].T
    else:
        with torch_seeded(draw_seed(rng)):  # svd_lowrank draws from the global generator
            _, _, v = torch.svd_lowrank(Xt, q=q + 10, niter=6)
        v = v[:, :q]
    sign = torch.sign(v[v.abs().argmax(0), torch.arange(q)])
    y = (Xt @ (v * sign)).double().numpy()
    if q < n_components:  # fewer features than components: pad with tiny noise
        y = np.concatenate([y, rng.normal(0, 1e-4, (y.shape[0], n_components - q))], 1)
    if np.std(y[:, 0]) == 0:  # all points identical
        return random_init(X.shape[0], n_components, random_state)
    return jitter(rescale(y), rng)


def random_init(n: int, n_components: int, random_state=None) -> np.ndarray:
    return np.random.default_rng(random_state).normal(0.0, TARGET_STD, (n, n_components))

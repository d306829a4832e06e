"""Initial embeddings (openTSNE's ``initialization``), all rescaled so that the first coordinate has
standard deviation 1e-4, plus a 1% jitter so that duplicates do not coincide:

* :func:`pca_init`: the top principal components of X (dense or scipy sparse, centred implicitly);
* :func:`spectral_init`: the leading non-trivial eigenvectors of the affinity graph's random walk,
  scaled by their eigenvalues (a diffusion map), for when there is no X to project;
* :func:`random_init`: Gaussian noise.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from .._runtime import draw_seed, torch_seeded

TARGET_STD = 1e-4
DENSE_EIGEN_MAX_N = 2000  # below this, eigen- and singular vectors from a dense decomposition


def rescale(y: np.ndarray, target_std: float = TARGET_STD) -> np.ndarray:
    std = float(np.std(y[:, 0]))
    return y * (target_std / std) if std > 0 else y


def jitter(y: np.ndarray, rng: np.random.Generator, scale: float = 0.01) -> np.ndarray:
    std = float(np.std(y[:, 0])) or TARGET_STD
    return y + rng.normal(0.0, std * scale, y.shape)


def _finish(y: np.ndarray, n_components: int, rng: np.random.Generator) -> np.ndarray:
    """Pad missing components with tiny noise, fix signs (largest loading positive), rescale, jitter."""
    if y.shape[1] < n_components:
        y = np.concatenate([y, rng.normal(0, 1e-4, (y.shape[0], n_components - y.shape[1]))], 1)
    if np.std(y[:, 0]) == 0:  # all points identical
        return rng.normal(0.0, TARGET_STD, y.shape)
    y = y * np.sign(y[np.abs(y).argmax(0), np.arange(y.shape[1])] + 1e-300)
    return jitter(rescale(y), rng)


def pca_init(X, n_components: int, random_state=None) -> np.ndarray:
    """Top principal components (exact SVD for small inputs, randomised for large ones, ARPACK on
    the implicitly centred matrix for large sparse X), rescaled and jittered; reproducible signs."""
    rng = np.random.default_rng(random_state)
    if sp.issparse(X) and X.shape[0] * X.shape[1] > 10**7:
        return _finish(_sparse_pca(X.tocsr().astype(np.float64), n_components, rng), n_components, rng)
    if sp.issparse(X):
        X = X.toarray()
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
    return _finish((Xt @ v).double().numpy(), n_components, rng)


def _sparse_pca(X: sp.csr_matrix, n_components: int, rng: np.random.Generator) -> np.ndarray:
    from scipy.sparse.linalg import LinearOperator, svds

    mean = np.asarray(X.mean(0)).ravel()
    centred = LinearOperator(X.shape, dtype=np.float64, matvec=lambda v: X @ v - mean @ v,
                             rmatvec=lambda u: X.T @ u - mean * u.sum())
    q = min(n_components, min(X.shape) - 1)
    _, s, vt = svds(centred, k=q, v0=rng.uniform(-1, 1, min(X.shape)))
    v = vt[np.argsort(s)[::-1]].T
    return X @ v - mean @ v


def spectral_init(P: sp.spmatrix, n_components: int, random_state=None) -> np.ndarray:
    """The diffusion map of the affinity graph (openTSNE's ``spectral``): the leading eigenvectors
    of P v = lambda D v (D the degrees) after the constant one, times their eigenvalues; computed
    as eigenvectors of the symmetric D^-1/2 P D^-1/2."""
    rng = np.random.default_rng(random_state)
    P = sp.csr_matrix(P, dtype=np.float64)
    P = (P + P.T) / 2
    n = P.shape[0]
    deg = np.maximum(np.asarray(P.sum(1)).ravel(), np.finfo(np.float64).tiny)
    inv_sqrt = sp.diags(1.0 / np.sqrt(deg))
    S = inv_sqrt @ P @ inv_sqrt
    k = min(n_components + 1, n)
    if n <= DENSE_EIGEN_MAX_N or k >= n - 1:
        vals, vecs = np.linalg.eigh(S.toarray())
    else:
        from scipy.sparse.linalg import eigsh

        vals, vecs = eigsh(S, k=k, which="LA", tol=1e-4, v0=rng.uniform(-1, 1, n))
    top = np.argsort(vals)[::-1][:k]
    vecs = (vecs[:, top] / np.sqrt(deg)[:, None]) * vals[top]
    return _finish(vecs[:, 1:], n_components, rng)


def random_init(n: int, n_components: int, random_state=None) -> np.ndarray:
    return np.random.default_rng(random_state).normal(0.0, TARGET_STD, (n, n_components))

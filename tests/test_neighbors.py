"""Dataset-level kNN: faiss and chunked torch paths against a brute-force float64 reference."""
import os

import numpy as np
import pytest
import torch

from iconlearn import neighbors
from iconlearn.neighbors import knn


def brute(x, k, metric):
    x = np.asarray(x, np.float64)
    if metric == "cosine":
        u = x / np.linalg.norm(x, axis=1, keepdims=True)
        d = 1 - u @ u.T
    else:
        d = ((x[:, None] - x[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, 1), idx


@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean"])
@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_knn_matches_brute_force(metric, backend):
    if backend == "faiss" and not neighbors.HAVE_FAISS:
        if os.environ.get("CI"):  # the README's install (.[dev,faiss]) includes faiss: never skip there
            pytest.fail("faiss is not installed, though the README's install command includes it")
        pytest.skip("faiss not installed")
    x = np.random.default_rng().normal(size=(300, 7)).astype(np.float32)
    d, i = knn(x, 5, metric=metric, backend=backend)
    rd, ri = brute(x, 5, metric)
    np.testing.assert_allclose(d, rd, atol=1e-4)
    assert (i == ri).mean() > 0.99  # ties aside, the same neighbours
    assert not (i == np.arange(300)[:, None]).any()


def test_torch_path_is_chunked(monkeypatch):
    monkeypatch.setattr(neighbors, "chunk_rows", lambda n, budget=0: 16)
    x = torch.randn(100, 4)
    d, i = knn(x, 3, backend="torch")
    _, ri = brute(x.numpy(), 3, "cosine")
    assert (i == ri).mean() > 0.99


def test_knn_errors():
    x = np.random.default_rng(0).normal(size=(10, 3))
    with pytest.raises(ValueError, match="smaller than the number of points"):
        knn(x, 10)
    with pytest.raises(ValueError, match="metric"):
        knn(x, 2, metric="manhattan")
    with pytest.raises(ValueError, match="backend"):
        knn(x, 2, backend="annoy")
    with pytest.raises(ValueError, match="k must be"):
        knn(x, 0)


def test_duplicates_exclude_self():
    x = np.ones((6, 3), np.float32)
    _, i = knn(x, 5, backend="torch")
    assert not (i == np.arange(6)[:, None]).any()


@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean", "euclidean"])
@pytest.mark.parametrize("backend", ["torch", "faiss"])
def test_cross_query_matches_brute_force(metric, backend):
    """knn(x, k, y=ref): the k nearest rows of ref for every query row (nothing excluded)."""
    if backend == "faiss" and not neighbors.HAVE_FAISS:
        pytest.skip("faiss not installed")
    rng = np.random.default_rng()
    q, ref = rng.normal(size=(50, 6)).astype(np.float32), rng.normal(size=(200, 6)).astype(np.float32)
    d, i = knn(q, 4, y=ref, metric=metric, backend=backend)
    q64, r64 = q.astype(np.float64), ref.astype(np.float64)
    if metric == "cosine":
        full = 1 - (q64 / np.linalg.norm(q64, axis=1, keepdims=True)) @ (r64 / np.linalg.norm(r64, axis=1, keepdims=True)).T
    else:
        full = ((q64[:, None] - r64[None]) ** 2).sum(-1)
        full = np.sqrt(full) if metric == "euclidean" else full
    ri = np.argsort(full, axis=1, kind="stable")[:, :4]
    np.testing.assert_allclose(d, np.take_along_axis(full, ri, 1), atol=1e-4)
    assert (i == ri).mean() > 0.99
    with pytest.raises(ValueError, match="reference points"):
        knn(q, 201, y=ref, backend=backend)
    with pytest.raises(ValueError, match="features"):
        knn(q, 2, y=ref[:, :3], backend=backend)


@pytest.mark.skipif(not neighbors.HAVE_FAISS, reason="the approximate index is faiss's")
@pytest.mark.parametrize("metric", ["cosine", "sqeuclidean"])
def test_approximate_index_finds_the_exact_neighbours(metric):
    """faiss's inverted-file index (chosen by approximate='auto' above EXACT_MAX_POINTS points):
    nearly every exact neighbour found, self excluded, distances sorted, cross queries too."""
    rng = np.random.default_rng(1)
    centres = rng.standard_normal((40, 16))
    x = (centres[rng.integers(0, 40, 6000)] + 0.5 * rng.standard_normal((6000, 16))).astype(np.float32)
    d0, i0 = knn(x, 5, metric=metric, approximate=False)
    d1, i1 = knn(x, 5, metric=metric, approximate=True)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(i0, i1)])
    assert recall > 0.95
    assert not (i1 == np.arange(len(x))[:, None]).any()
    assert (np.diff(d1, axis=1) >= 0).all()
    q = x[:300] + 0.01
    _, j0 = knn(q, 3, y=x, metric=metric, approximate=False)
    _, j1 = knn(q, 3, y=x, metric=metric, approximate=True)
    assert np.mean(j0 == j1) > 0.95


def test_approximate_argument_checked():
    x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    with pytest.raises(ValueError, match="approximate"):
        knn(x, 3, approximate="yes")
    with pytest.raises(ValueError, match="exact only"):
        knn(x, 3, backend="torch", approximate=True)

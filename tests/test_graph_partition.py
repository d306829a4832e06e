"""Normalized cut and merge-split refinement against dense references and on a planted imbalanced
partition; the alpha_q -> 1 limit of the exact I-Con loss is the normalized cut."""
import numpy as np
import pytest
import scipy.sparse as sp

from iconlearn.cluster_likelihood import hard_partition_loss
from iconlearn.graph_partition import normalized_cut, refine_partition, symmetric_knn_graph
from iconlearn.metrics import hungarian_accuracy
from iconlearn.neighbors import knn
from iconlearn.supervisory.graph import knn_matrix, walk_matrix


def _ncut_dense(labels, A):
    A = np.asarray(A.todense()) if sp.issparse(A) else A
    total = 0.0
    for c in np.unique(labels):
        inside = labels == c
        vol = A[inside].sum()
        total += A[inside][:, ~inside].sum() / vol
    return total


@pytest.mark.parametrize("seed", range(3))
def test_normalized_cut_matches_the_dense_formula(seed):
    rng = np.random.default_rng(seed)
    A = rng.random((30, 30)) * (rng.random((30, 30)) < 0.3)
    A = sp.csr_matrix(A + A.T)
    labels = rng.integers(0, 4, 30)
    assert normalized_cut(labels, A) == pytest.approx(_ncut_dense(labels, A), rel=1e-12)


def test_the_exact_loss_tends_to_the_normalized_cut_as_alpha_q_goes_to_one():
    """N L = const - sum_c g(n_c) [(1 - a_p) w_c + a_p n_c^2 / N] with g(n) ~ x / n for n >> x =
    N (1 - a_q) / a_q: the loss differences of two partitions, divided by (1 - a_p) x / N, become
    their differences in sum_c cut(c) / n_c of the row-stochastic W (its normalized cut)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)) + np.repeat(rng.normal(size=(3, 3)) * 3, 100, 0)
    _, idx = knn(X, 5)
    W = walk_matrix(knn_matrix(idx), steps=2)
    a, b = rng.integers(0, 3, 300), np.repeat(np.arange(3), 100)

    def ncut_rows(labels):  # sum_c cut(c) / vol(c) of the directed W: vol(c) = n_c
        return sum((W[labels == c][:, labels != c].sum()) / (labels == c).sum() for c in range(3))

    n, ap = 300, 0.6
    for aq, tol in [(1 - 1e-6, 1e-3)]:
        x = n * (1 - aq) / aq
        scaled = (hard_partition_loss(a, W, ap, aq) - hard_partition_loss(b, W, ap, aq)) * n / ((1 - ap) * x)
        assert scaled == pytest.approx(ncut_rows(a) - ncut_rows(b), rel=tol)


def _planted(seed):
    """A large class of 600 points and two small ones of 60: the balanced kind of partition that a
    size prior prefers (the large class cut in two, the small ones merged) as the start."""
    rng = np.random.default_rng(seed)
    big = rng.normal(size=(600, 2)) * [3.0, 1.0]
    small = [rng.normal(size=(60, 2)) * 0.5 + c for c in ([0.0, 8.0], [0.0, -8.0])]
    X = np.concatenate([big, *small]).astype(np.float32)
    y = np.repeat([0, 1, 2], [600, 60, 60])
    start = np.where(y == 0, (X[:, 0] > 0).astype(int), 2)
    return X, y, start


@pytest.mark.parametrize("seed", range(3))
def test_refinement_recovers_a_planted_imbalanced_partition(seed):
    X, y, start = _planted(seed)
    _, idx = knn(X, 5, metric="sqeuclidean")
    W = walk_matrix(knn_matrix(idx), steps=4)
    assert hungarian_accuracy(y, start) < 0.65
    refined, moves = refine_partition(start, W, X - X.mean(0), 0.6, 0.3, random_state=seed)
    assert moves >= 1 and hungarian_accuracy(y, refined) > 0.97
    assert hard_partition_loss(refined, W, 0.6, 0.3) < hard_partition_loss(start, W, 0.6, 0.3)
    assert len(np.unique(refined)) == 3


def test_refinement_takes_only_moves_that_lower_the_exact_loss():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(400, 5)).astype(np.float32)
    _, idx = knn(X, 4)
    W = walk_matrix(knn_matrix(idx), steps=2)
    start = rng.integers(0, 5, 400)
    before = hard_partition_loss(start, W, 0.6, 0.3)
    refined, moves = refine_partition(start, W, X, 0.6, 0.3, max_moves=3)
    assert moves <= 3
    after = hard_partition_loss(refined, W, 0.6, 0.3)
    assert after <= before and (moves == 0) == (after == before)
    assert sorted(np.unique(refined)) == list(range(5))


def test_symmetric_knn_graph():
    idx = np.array([[1], [2], [1]])
    A = symmetric_knn_graph(idx).toarray()
    np.testing.assert_array_equal(A, [[0, 1, 0], [1, 0, 1], [0, 1, 0]])

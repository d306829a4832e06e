"""Supervisory distributions p(j|i): pairs, labels, Gaussian calibration, kNN graphs and walks,
debiasing and mixtures, each against a plain reference."""
import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from iconlearn.core import SparseRows, Smoothed
from iconlearn.supervisory import (
    augmentation_targets,
    calibrate,
    cluster_targets,
    cross_modal_targets,
    debias,
    degrees,
    gaussian_targets,
    graph_matrix,
    has_positive,
    knn_matrix,
    mix,
    restrict_to_batch,
    rows_of,
    same_group_targets,
    symmetrize,
    walk_matrix,
)


def dense_same_group(groups, ref, own):
    p = torch.zeros(len(groups), len(ref), dtype=torch.float64)
    for i in range(len(groups)):
        cols = [j for j in range(len(ref)) if ref[j] == groups[i] and (own is None or j != own[i])]
        for j in cols:
            p[i, j] = 1.0 / len(cols)
    return p


@pytest.mark.parametrize("seed", range(4))
def test_same_group_targets_matches_dense_reference(seed):
    g = torch.Generator().manual_seed(seed)
    groups = torch.randint(0, 5, (12,), generator=g)
    p = same_group_targets(groups, dtype=torch.float64)
    assert isinstance(p, SparseRows)
    assert torch.allclose(p.to_dense(12), dense_same_group(groups, groups, torch.arange(12)))
    ref = torch.randint(0, 7, (20,), generator=g)
    own = torch.randperm(20, generator=g)[:12]
    p = same_group_targets(groups, ref, self_columns=own, dtype=torch.float64)
    assert torch.allclose(p.to_dense(20), dense_same_group(groups, ref, own))
    p = same_group_targets(groups, ref, exclude_self=False, dtype=torch.float64)
    assert torch.allclose(p.to_dense(20), dense_same_group(groups, ref, None))


def test_same_group_rows_without_positive_are_zero():
    p = same_group_targets(torch.tensor([0, 1, 0, 2]))
    assert has_positive(p).tolist() == [True, False, True, False]


@pytest.mark.parametrize("views", [2, 3, 4])
def test_augmentation_targets(views):
    n = 5
    p = augmentation_targets(n, views, dtype=torch.float64)
    assert p.indices.shape == (n * views, views - 1)
    ids = torch.arange(n).repeat(views)
    assert torch.allclose(p.to_dense(n * views), dense_same_group(ids, ids, torch.arange(n * views)))
    with pytest.raises(ValueError, match="n_views"):
        augmentation_targets(3, 1)


def test_cross_modal_targets_identity():
    assert torch.equal(cross_modal_targets(4).to_dense(4), torch.eye(4))


def entropy_nats(p):
    return -sum(v * math.log(v) for v in p if v > 0)


def test_calibrate_reaches_perplexity_per_row():
    g = torch.Generator().manual_seed(0)
    d = torch.rand(50, 20, generator=g, dtype=torch.float64) * torch.logspace(-2, 2, 50, dtype=torch.float64)[:, None]
    for perp in (2.0, 7.5, 15.0):
        P, beta = calibrate(d, perp, tol=1e-10)
        assert torch.allclose(P.sum(1), torch.ones(50, dtype=torch.float64))
        for i in range(0, 50, 7):
            assert math.exp(entropy_nats(P[i].tolist())) == pytest.approx(perp, rel=1e-8)
            # P is the Gaussian exp(-beta d) / Z with that beta
            ref = torch.softmax(-beta[i] * d[i], 0)
            assert torch.allclose(P[i], ref, atol=1e-12)


def test_calibrate_rejects_bad_perplexity():
    d = torch.rand(4, 3)
    for bad in (0.0, -1.0, 3.0, 10.0):
        with pytest.raises(ValueError, match="perplexity"):
            calibrate(d, bad)


def test_gaussian_targets_dense_and_exclude():
    X = torch.randn(9, 3, dtype=torch.float64)
    d = torch.cdist(X, X) ** 2
    P = gaussian_targets(d, perplexity=3.0)
    assert torch.all(P.diagonal() == 0) and torch.allclose(P.sum(1), torch.ones(9, dtype=torch.float64))
    # rows 3..5 against all 9 columns, excluding their own positions
    sub = gaussian_targets(d[3:6], perplexity=3.0, exclude=torch.tensor([3, 4, 5]))
    assert torch.allclose(sub, P[3:6], atol=1e-12)
    with pytest.raises(ValueError, match="exclude"):
        gaussian_targets(d[3:6], perplexity=3.0)


def test_symmetrize_is_joint_p():
    X = torch.randn(8, 3, dtype=torch.float64)
    d = torch.cdist(X, X) ** 2
    P = gaussian_targets(d, perplexity=3.0)
    idx = torch.argsort(d + torch.eye(8, dtype=torch.float64) * 1e9, 1)[:, :7]
    sp_p = SparseRows(P.gather(1, idx), idx)
    ind, val = symmetrize(sp_p, 8)
    J = torch.zeros(8, 8, dtype=torch.float64)
    J[ind[0], ind[1]] = val
    assert torch.allclose(J, (P + P.T) / 16) and float(J.sum()) == pytest.approx(1.0)


def test_knn_walks_match_matrix_powers():
    nb = np.array([[1, 2], [0, 3], [3, 0], [2, 1]])
    P = knn_matrix(nb)
    D = P.toarray()
    assert np.allclose(D.sum(1), 1) and D[0, 1] == 0.5
    for s in (1, 2, 3):
        tot = sum(np.linalg.matrix_power(D, k) for k in range(1, s + 1))
        np.fill_diagonal(tot, 0)
        ref = tot / tot.sum(1, keepdims=True)
        assert np.allclose(walk_matrix(P, s).toarray(), ref)
        binar = (tot > 0).astype(float)
        assert np.allclose(walk_matrix(P, s, binarize=True).toarray(), binar / binar.sum(1, keepdims=True))
    with pytest.raises(ValueError, match="steps"):
        walk_matrix(P, 0)


def test_graph_matrix_degrees_rows_of():
    W = np.array([[0, 2.0, 1.0], [2.0, 0, 0], [1.0, 0, 0]])
    assert np.allclose(degrees(W), [3, 2, 1])
    G = graph_matrix(W)
    assert np.allclose(G.toarray(), W / W.sum(1, keepdims=True))
    r = rows_of(G, np.array([0, 2]))
    assert torch.allclose(r.to_dense(3).double(), torch.tensor(G.toarray()[[0, 2]]))
    with pytest.raises(ValueError, match="non-negative"):
        graph_matrix(-W)


def test_restrict_to_batch_renormalises_and_shares_repeats():
    P = sp.csr_matrix(np.array([[0, 0.5, 0.25, 0.25], [0.5, 0, 0.5, 0], [0.5, 0.5, 0, 0], [1.0, 0, 0, 0]]))
    batch = np.array([0, 1, 1, 3])  # point 1 seen in two views, point 2 absent
    t = restrict_to_batch(P, anchor_ids=batch, batch_ids=batch, exclude_positions=np.arange(4))
    D = t.to_dense(4).double()
    # anchor 0: mass on point 1 (0.5, split over columns 1, 2) and point 3 (0.25), renormalised
    assert torch.allclose(D[0], torch.tensor([0, 1 / 3, 1 / 3, 1 / 3], dtype=torch.float64))
    # anchor at column 1 (point 1): neighbours 0 and 2 -> only 0 present
    assert torch.allclose(D[1], torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    # tensors are accepted as well
    t2 = restrict_to_batch(P, torch.as_tensor(batch), torch.as_tensor(batch), exclude_positions=torch.arange(4))
    assert torch.allclose(t2.to_dense(4).double(), D)


def test_debias_and_mix():
    p = same_group_targets(torch.tensor([0, 0, 1, 1]))
    assert debias(p, 0.0) is p
    s = debias(p, 0.3, torch.arange(4))
    assert isinstance(s, Smoothed) and s.alpha == 0.3
    a = SparseRows(torch.tensor([[1.0], [1.0]]), torch.tensor([[1], [0]]))
    b = SparseRows(torch.tensor([[0.5, 0.5], [1.0, 0.0]]), torch.tensor([[1, 2], [2, 0]]))
    m = mix([a, b], [0.5, 0.5])
    assert torch.allclose(m.to_dense(3), torch.tensor([[0, 0.75, 0.25], [0.5, 0, 0.5]]))
    assert torch.allclose(mix([a.to_dense(3), b], [0.5, 0.5]), m.to_dense(3))
    with pytest.raises(ValueError, match="weights"):
        mix([a, b], [1.0])


def test_cluster_targets_rows_sum_to_one():
    phi = torch.softmax(torch.randn(6, 3), 1)
    P = cluster_targets(phi)
    assert torch.allclose(P.sum(1), torch.ones(6), atol=1e-5)
    P = cluster_targets(phi, exclude_self=True)
    assert torch.all(P.diagonal() == 0)


def test_targets_never_form_a_batch_by_batch_matrix():
    """200,000 rows: a B x B boolean matrix would need 40 GB, the sparse targets need O(B K)."""
    ids = torch.arange(100_000).repeat(2)
    p = same_group_targets(ids)
    assert p.indices.shape == (200_000, 2) and bool((p.values.sum(1) == 1).all())
    assert torch.equal(p.indices.gather(1, p.values.argmax(1, keepdim=True)).squeeze(1), torch.arange(200_000).roll(100_000))
    a = augmentation_targets(100_000, 2)
    assert a.indices.shape == (200_000, 1) and torch.equal(a.indices.squeeze(1), torch.arange(200_000).roll(100_000))

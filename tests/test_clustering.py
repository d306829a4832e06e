"""IConClustering and the baselines: batches and targets against dense float64 references,
SCAN / TEMI losses against their papers' formulas, recovery of separated clusters, bad input."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from iconlearn.core import SparseRows
from iconlearn.estimators.baselines import (KMeansClustering, PlainIConClustering, SCANClustering,
                                            SpectralClusteringBaseline, TEMIClustering)
from iconlearn.estimators.clustering import IConClustering, sample_rows
from iconlearn.metrics import hungarian_accuracy
from iconlearn.nn import EMA, MultiHead


def blobs(n_per=40, k=4, d=6, seed=0, spread=0.15):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    X = np.concatenate([c + spread * rng.normal(size=(n_per, d)) for c in centers]).astype(np.float32)
    return X, np.repeat(np.arange(k), n_per)


# small data otherwise trains for min_steps=300 optimiser steps: keep the suite fast
FAST = dict(epochs=8, batch_size=32, n_heads=2, device="cpu", min_steps=100)


def test_recovers_separated_clusters():
    X, y = blobs()
    m = IConClustering(4, random_state=0, **FAST).fit(X)
    assert hungarian_accuracy(y, m.labels_) == 1.0
    P = m.predict_proba(X)
    np.testing.assert_allclose(P.sum(1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(m.predict(X), m.labels_)
    assert m.loss_history_.shape[1] == 2 and m.best_head_ == int(np.argmin(m.head_losses_))
    assert m.neighbors_.shape == (len(X), 3)
    every = m.heads_proba(X)  # all kept heads; the selected one is predict_proba
    assert every.shape == (2, len(X), 4)
    np.testing.assert_array_equal(every[m.best_head_], P)


def test_random_state_reproducible():
    X, _ = blobs(seed=1)
    a = IConClustering(4, random_state=3, **dict(FAST, min_steps=10)).fit(X).predict_proba(X)
    b = IConClustering(4, random_state=3, **dict(FAST, min_steps=10)).fit(X).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_views_and_ema_and_mlp_heads():
    X, y = blobs(seed=2)
    views = np.stack([X + 0.05 * np.random.default_rng(s).normal(size=X.shape).astype(np.float32) for s in range(2)])
    m = IConClustering(4, random_state=0, ema_decay=0.9, hidden=16, **FAST).fit(X, views=views)
    assert hungarian_accuracy(y, m.labels_) >= 0.95
    m0 = IConClustering(4, n_neighbors=0, random_state=0, **dict(FAST, epochs=1, batch_size=160, min_steps=5)).fit(X, views=views)  # augmentations only
    assert m0.labels_.shape == y.shape


@pytest.mark.parametrize("cls", [PlainIConClustering, SCANClustering, TEMIClustering, KMeansClustering,
                                 SpectralClusteringBaseline])
def test_baselines_run_and_recover(cls):
    X, y = blobs(seed=4)
    kw = {} if cls in (KMeansClustering, SpectralClusteringBaseline) else dict(FAST, epochs=15)
    labels = cls(4, random_state=0, **kw).fit_predict(X)
    assert hungarian_accuracy(y, labels) >= 0.9


def test_sample_rows_follows_the_row_distribution():
    W = sp.csr_matrix(np.array([[0, 0.2, 0.8, 0], [0.5, 0, 0, 0.5], [0, 0, 0, 1.0], [1.0, 0, 0, 0]]))
    rng = np.random.default_rng(0)
    draws = sample_rows(W, np.array([0, 1, 2, 3] * 5000), 2, rng)
    for r, row in enumerate(W.toarray()):
        freq = np.bincount(draws[r::4].ravel(), minlength=4) / draws[r::4].size
        np.testing.assert_allclose(freq, row, atol=0.02)


def test_batch_target_matches_dense_reference():
    """p from each anchor over the batch rows = the anchor's walk row restricted to the batch,
    repeated dataset points sharing their mass, renormalised (float64 reference)."""
    X, _ = blobs(n_per=10, k=3)
    m = IConClustering(3, walks=1, random_state=0, **FAST)
    _, Xn, _, W = m._prepare(X, None)
    rng = np.random.default_rng(0)
    anchors, nbrs, _ = next(m._batches(len(X), W, 0, rng))
    batch = m._make_batch(torch.as_tensor(Xn), None, W, anchors, nbrs, None)
    p = batch.p.to_dense(len(batch.ids)).double().numpy() if isinstance(batch.p, SparseRows) else batch.p
    Wd = W.toarray()
    ref = np.zeros_like(p)
    counts = np.bincount(batch.ids, minlength=len(X))
    for r, a in enumerate(anchors):
        for c, j in enumerate(batch.ids):
            ref[r, c] = Wd[a, j] / counts[j]
    ref /= np.maximum(ref.sum(1, keepdims=True), 1e-300)
    np.testing.assert_allclose(p, ref, atol=1e-6)
    # walks=1: P + P^2 renormalised, self excluded
    P = np.zeros((len(X), len(X)))
    P[np.repeat(np.arange(len(X)), 3), m.neighbors_.ravel()] = 1 / 3
    S = P + P @ P
    np.fill_diagonal(S, 0)
    np.testing.assert_allclose(Wd, S / S.sum(1, keepdims=True), atol=1e-12)


def test_scan_loss_reference():
    torch.manual_seed(0)
    probs = torch.softmax(torch.randn(2, 9, 4, dtype=torch.float64), -1)
    partners = torch.tensor([[3, 6], [4, 7], [5, 8]])
    batch = type("B", (), {"partners": partners})()
    m = SCANClustering(4)
    got = m._head_losses(probs, None, batch)
    for h in range(2):
        cons = np.mean([-np.log(float(probs[h, i] @ probs[h, j])) for i in range(3) for j in partners[i].tolist()])
        mean = probs[h, :3].mean(0).numpy()
        ent = -(mean * np.log(mean)).sum()
        assert float(got[h]) == pytest.approx(cons - 5 * ent, rel=1e-9)


def test_temi_loss_reference():
    torch.manual_seed(1)
    qs = torch.softmax(torch.randn(1, 6, 3, dtype=torch.float64), -1)
    qt = torch.softmax(torch.randn(1, 6, 3, dtype=torch.float64), -1)
    partners = torch.tensor([[3], [4], [5]])
    batch = type("B", (), {"partners": partners})()
    m = TEMIClustering(3, n_heads=1, beta=0.6)
    m._init_state("cpu")
    pt = m._marginal.clone()[0, 0].numpy()
    got = float(m._head_losses(qs, qt, batch)[0])
    ref = []
    for i in range(3):
        j = i + 3
        for a, b in ((i, j), (j, i)):
            w = float(qt[0, a] @ qt[0, b])
            inner = sum((float(qs[0, a, k]) * float(qt[0, b, k])) ** 0.6 / pt[k] for k in range(3))
            ref.append(-w * np.log(inner))
    assert got == pytest.approx(np.mean(ref), rel=1e-6)  # the marginal is kept in float32
    # the marginal moved towards the teacher's batch marginal
    np.testing.assert_allclose(m._marginal[0, 0].numpy(), 0.9 * pt + 0.1 * qt[0, :3].mean(0).numpy())


def test_ema_teacher():
    head = MultiHead(3, 2, n_heads=1)
    ema = EMA(head, decay=0.5)
    assert all(not p.requires_grad for p in ema.parameters())
    before = ema.module.out.weight.clone()
    with torch.no_grad():
        head.out.weight.add_(1.0)
    ema.update(head)
    torch.testing.assert_close(ema.module.out.weight, 0.5 * before + 0.5 * head.out.weight)
    with pytest.raises(ValueError, match="decay"):
        EMA(head, 1.0)


def test_multihead_shapes():
    h = MultiHead(5, 3, n_heads=4, hidden=7)
    x = torch.randn(10, 5)
    assert h(x).shape == (4, 10, 3)
    torch.testing.assert_close(h.probs(x).sum(-1), torch.ones(4, 10))


@pytest.mark.parametrize("X, kw, match", [
    (np.full((20, 3), np.nan), {}, "NaN"),
    (np.zeros((3, 2)), {"n_clusters": 4}, "fewer points than clusters"),
    (np.random.rand(20, 3), {"n_clusters": 0}, "n_clusters must be >= 1"),
    (np.random.rand(20, 3), {"n_neighbors": 20}, "n_neighbors must be smaller"),
    (np.random.rand(20), {}, "2-D"),
    (np.random.rand(20, 3), {"alpha_p": 1.5}, "alpha_p"),
    (np.random.rand(20, 3), {"n_neighbors": 0}, "augmented views"),
])
def test_bad_input(X, kw, match):
    kw = {"n_clusters": 2, **kw}
    with pytest.raises(ValueError, match=match):
        IConClustering(**kw, **FAST).fit(X)


def test_bad_views_and_unfitted():
    X = np.random.rand(30, 3).astype(np.float32)
    with pytest.raises(ValueError, match="views"):
        IConClustering(2, **dict(FAST, min_steps=2)).fit(X, views=np.zeros((2, 29, 3)))
    with pytest.raises(ValueError, match="not fitted"):
        IConClustering(2).predict(X)
    m = IConClustering(2, **dict(FAST, epochs=1, min_steps=2)).fit(X)
    with pytest.raises(ValueError, match="3 features|features"):
        m.predict(np.zeros((4, 5)))
    with pytest.raises(ValueError, match="fewer points"):
        KMeansClustering(5).fit(X[:3])


# ---------------------------------------------------------------- k-means start, normalisation, selection
def test_kmeans_head_starts_at_the_spherical_kmeans_partition():
    from sklearn.cluster import KMeans

    from iconlearn.estimators.clustering import normalize_features
    from iconlearn.estimators.kmeans_init import kmeans_heads, spherical_kmeans_logits

    X, _ = blobs(n_per=50, k=5, d=8, seed=4, spread=1.0)
    L = spherical_kmeans_logits(X, 5, seed=7)
    # the reference: one k-means++ run on the unit rows, then argmax of the cosine to the centroids
    Xh = X / np.linalg.norm(X, axis=1, keepdims=True)
    mu = KMeans(5, n_init=1, random_state=7).fit(Xh).cluster_centers_
    ref = np.argmax(Xh @ (mu / np.linalg.norm(mu, axis=1, keepdims=True)).T, 1)
    np.testing.assert_array_equal(L.argmax(1), ref)
    top2 = -np.sort(-L, 1)[:, :2]
    assert np.median(top2[:, 0] - top2[:, 1]) == pytest.approx(1.0, rel=1e-6)  # T: median gap = one logit
    # on unit rows the head is exact; on standardised rows it is a least-squares fit of the logits
    for how in ("l2", "standard"):
        Xn, _ = normalize_features(X, how)
        w, b = kmeans_heads(X, Xn, 5, seeds=[3, 7])
        logits = Xn @ w[1] + b[1]
        if how == "l2":
            np.testing.assert_allclose(logits, L, atol=1e-3)
        assert (logits.argmax(1) == ref).mean() >= 0.9


def test_hard_partition_loss_matches_the_dense_formula():
    """-1/N sum_ij p'_ij log q'_ij with p' = (1 - a_p) W + a_p / N and q' = (1 - a_q) [c_i = c_j] / n_c
    + a_q / N, written densely in float64 on a random partition and a random kNN-walk graph."""
    from iconlearn.cluster_likelihood import hard_partition_loss
    from iconlearn.supervisory.graph import knn_matrix, walk_matrix

    rng = np.random.default_rng()
    n, k = 40, 4
    idx = np.stack([rng.choice(np.delete(np.arange(n), i), 3, replace=False) for i in range(n)])
    W = walk_matrix(knn_matrix(idx, n), steps=2)
    labels = rng.integers(0, k, n)
    labels[:k] = np.arange(k)  # every cluster non-empty
    Wd = W.toarray()
    sizes = np.bincount(labels)
    same = labels[:, None] == labels[None, :]
    for a_p, a_q in [(0.0, 0.6), (0.6, 0.6), (0.3, 0.9)]:
        p = (1 - a_p) * Wd + a_p / n
        q = (1 - a_q) * same / sizes[labels][:, None] + a_q / n
        ref = -(p * np.log(q)).sum(1).mean()
        assert hard_partition_loss(labels, W, a_p, a_q) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_default_objective_prefers_an_imbalanced_grouping_to_a_balanced_split(seed):
    """Why the defaults are walks=3, alpha_q=0.3: on two overlapping groups of 900 and 100 points the
    paper's setting (walks 1, alpha_q 0.6) gives a balanced split across both groups a lower exact
    loss than the true grouping (each point pays log n_c); the defaults rank the true grouping first."""
    from iconlearn.cluster_likelihood import hard_partition_loss
    from iconlearn.neighbors import knn
    from iconlearn.supervisory.graph import knn_matrix, walk_matrix

    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(size=(900, 5)), rng.normal(size=(100, 5)) + 3 / np.sqrt(5)])
    truth = np.repeat([0, 1], [900, 100])
    balanced = (X[:, 1] > np.median(X[:, 1])).astype(int)
    _, idx = knn(X, 3, metric="sqeuclidean")

    def margin(est):  # loss(true grouping) - loss(balanced split)
        W = walk_matrix(knn_matrix(idx, len(X)), steps=1 + est.walks)
        return (hard_partition_loss(truth, W, est.alpha_p, est.alpha_q)
                - hard_partition_loss(balanced, W, est.alpha_p, est.alpha_q))

    assert margin(IConClustering(2, walks=1, alpha_q=0.6)) > 0
    assert margin(IConClustering(2)) < 0


def test_keep_heads_continues_training_as_if_only_those_heads_existed():
    """Pruning heads mid-training (parameters, Adam moments, EMA teacher) gives exactly the run in
    which only the kept heads were ever trained: Adam is elementwise and the loss separates by head."""
    from iconlearn.nn.heads import keep_heads

    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 6, generator=g)
    full = MultiHead(6, 3, n_heads=4, generator=g)
    keep = [2, 0]
    part = MultiHead(6, 3, n_heads=2)
    with torch.no_grad():
        for a, b in zip(part.parameters(), full.parameters()):
            a.copy_(b[keep])
    opts = [torch.optim.Adam(m.parameters(), lr=0.05) for m in (full, part)]
    teachers = [EMA(full, 0.9), EMA(part, 0.9)]

    def step(m, opt, teacher):
        loss = (m.probs(x)[:, :, 0] ** 2).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        teacher.update(m)

    for _ in range(3):
        step(full, opts[0], teachers[0])
        step(part, opts[1], teachers[1])
        if _ == 0:
            keep_heads(full, keep, opts[0], teachers[0])
            assert full.n_heads == 2 and full.out.weight.shape == (2, 6, 3)
    for a, b in zip(full.parameters(), part.parameters()):
        torch.testing.assert_close(a, b)
    for a, b in zip(teachers[0].module.parameters(), teachers[1].module.parameters()):
        torch.testing.assert_close(a, b)


def test_kmeans_starts_are_pruned_to_the_lowest_loss_heads():
    X, y = blobs(n_per=30, k=4, d=5, seed=6, spread=0.8)
    m = IConClustering(4, n_init=6, n_heads=2, epochs=1, batch_size=30, random_state=0, device="cpu", min_steps=12,
                       prune_steps=4).fit(X)
    # 4 steps per epoch: all 6 k-means starts train for one epoch, then the 2 lowest go on
    assert m.start_losses_.shape == (6,) and m.heads_.n_heads == 2
    assert m.loss_history_.shape == (3, 2) and m.head_losses_.shape == (2,)
    np.testing.assert_allclose(m.loss_history_[0], np.sort(m.start_losses_)[:2], rtol=1e-6)
    assert m.predict_proba(X).shape == (len(X), 4)
    with pytest.raises(ValueError, match="n_init"):
        IConClustering(4, n_init=0).fit(X)


def test_kmeans_init_starts_each_head_near_a_partition():
    X, y = blobs(n_per=30, k=6, d=5, seed=5, spread=0.8)
    m = IConClustering(6, init="k-means", epochs=1, batch_size=180, n_heads=3, lr=1e-9, random_state=0,
                       device="cpu", min_steps=1).fit(X)  # lr ~ 0: the heads are still at their k-means starts
    assert m.norm_stats_["auto"] == "scale"  # blobs are neither unit rows nor in several units
    labels = m.heads_.probs(torch.as_tensor(X / m.norm_stats_["rms"])).argmax(-1)
    assert labels.shape == (3, len(X))
    assert min(hungarian_accuracy(y, lab.numpy()) for lab in labels) > 0.5  # each head starts near a partition
    # the loss used for selection is a separate pass with the final weights, one value per head
    assert m.head_losses_.shape == (3,) and m.best_head_ == int(np.argmin(m.head_losses_))


def test_normalize_auto_keeps_unit_rows_scales_one_unit_and_standardises_several():
    from iconlearn.estimators.clustering import normalize_features

    rng = np.random.default_rng(0)
    U = rng.normal(size=(50, 4)).astype(np.float32)
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    Un, stats = normalize_features(U, "auto")
    assert stats["auto"] == "l2"
    np.testing.assert_allclose(Un, U, atol=1e-6)
    S = 3 + rng.normal(size=(50, 4)).astype(np.float32) * np.array([4, 2, 1, 1], np.float32)  # one unit
    Sn, stats = normalize_features(S, "auto")
    assert stats["auto"] == "scale"
    np.testing.assert_allclose(Sn * stats["rms"], S, rtol=1e-6)  # one factor: the geometry is kept
    np.testing.assert_allclose(np.sqrt((Sn.astype(np.float64) ** 2).mean()), 1.0, rtol=1e-5)
    A = 3 + rng.normal(size=(50, 4)).astype(np.float32) * np.array([500, 2, 1, 0.1], np.float32)  # several units
    An, stats = normalize_features(A, "auto")
    assert stats["auto"] == "standard"
    np.testing.assert_allclose(An.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(An.std(0), 1, atol=1e-3)
    again, _ = normalize_features(A[:5], "auto", stats)  # predict reuses the fit's choice and statistics
    np.testing.assert_allclose(again, An[:5], atol=1e-6)
    # at predict time the fitted choice is reused, even for rows that would choose otherwise
    np.testing.assert_allclose(normalize_features(U, "auto", stats)[0], (U - stats["mean"]) / stats["std"], rtol=1e-6)


@pytest.mark.parametrize("kw, match", [({"init": "kmeans++"}, "init must be"),
                                       ({"init": "k-means", "hidden": 8}, "hidden=0"),
                                       ({"normalize": "zscore"}, "normalize must be")])
def test_bad_init_and_normalize(kw, match):
    with pytest.raises(ValueError, match=match):
        IConClustering(2, **{**FAST, **kw}).fit(np.random.rand(30, 3))


def test_batch_size_auto_scales_with_the_data():
    m = IConClustering(2)
    assert [m._batch_size(n) for n in (100, 1797, 9100, 18821, 70000)] == [100, 256, 568, 1024, 1024]
    assert IConClustering(2, batch_size=64)._batch_size(50) == 50
    with pytest.raises(ValueError, match="batch_size"):
        IConClustering(2, **{**FAST, "batch_size": "big"}).fit(np.random.rand(30, 3))


def test_cosine_heads_give_scale_free_logits_in_unit_range():
    h = MultiHead(6, 4, n_heads=3, cosine=True, generator=torch.Generator().manual_seed(0))
    x = torch.randn(20, 6)
    logits = h(x).detach()
    assert logits.shape == (3, 20, 4) and float(logits.abs().max()) <= 1.0 + 1e-6
    torch.testing.assert_close(h(5.0 * x).detach(), logits)  # invariant to the input's scale
    ref = torch.nn.functional.normalize(x, dim=1) @ torch.nn.functional.normalize(h.out.weight[1], dim=0)
    torch.testing.assert_close(logits[1], ref.detach())
    assert TEMIClustering._cosine_heads and not IConClustering._cosine_heads


def test_refinement_keeps_a_large_class_whole():
    """A class of 600 points beside two of 60: the heads, whose loss charges each point the log of
    its cluster's size, cut the large class in two; merge-split refinement under the exact loss
    joins it again (seed 0: Hungarian accuracy 0.63 without, 0.90 with)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parent))
    from test_graph_partition import _planted

    from iconlearn.cluster_likelihood import hard_partition_loss

    X, y, _ = _planted(0)
    kw = dict(random_state=0, device="cpu", epochs=8, n_heads=2, min_steps=100)
    plain = IConClustering(3, refine=False, **kw).fit(X)
    refined = IConClustering(3, **kw).fit(X)
    assert refined.refine_moves_ >= 1 and plain.refine_moves_ == 0
    assert hungarian_accuracy(y, refined.labels_) > hungarian_accuracy(y, plain.labels_) + 0.2
    W = refined.graph_
    assert hard_partition_loss(refined.labels_, W, 0.6, 0.3) < hard_partition_loss(plain.labels_, W, 0.6, 0.3)
    # the head is re-fitted to the refined partition (a linear head cannot follow a 2-means split on
    # unit rows exactly: 0.93 here, converged)
    assert (refined.predict(X) == refined.labels_).mean() > 0.9


def test_paper_recipe():
    m = IConClustering.paper(5, random_state=1)
    p = m.get_params()
    assert (p["walks"], p["alpha_p"], p["alpha_q"], p["batch_size"], p["lr"], p["epochs"]) == (1, 0.6, 0.6, 4096, 1e-3, 30)
    assert p["normalize"] is None and p["init"] == "random" and p["refine"] is False and p["random_state"] == 1
    X, y = blobs(seed=6)
    m = IConClustering.paper(4, random_state=0, device="cpu", epochs=3).fit(X)
    assert m.loss_history_.shape == (3, 1) and not hasattr(m, "start_losses_")  # one random head, one step an epoch


def test_max_steps_caps_the_epochs():
    """max_steps lowers the epochs of a large fit to whole epochs within the cap (at least one);
    None leaves them; a cap below one step is refused."""
    X, _ = blobs(seed=3)
    kw = dict(random_state=0, device="cpu", batch_size=len(X) // 10, epochs=6, min_steps=0, n_heads=1, init="random")
    assert IConClustering(4, max_steps=25, **kw).fit(X).loss_history_.shape[0] == 2  # 25 // 10 whole epochs
    assert IConClustering(4, max_steps=None, **kw).fit(X).loss_history_.shape[0] == 6
    assert IConClustering(4, max_steps=1, **kw).fit(X).loss_history_.shape[0] == 1
    with pytest.raises(ValueError, match="max_steps"):
        IConClustering(4, max_steps=0, **kw).fit(X)

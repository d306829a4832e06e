"""SNE / t-SNE as I-Con: the fast gradients against autograd of the exact icon_loss, the FFT
interpolation against direct sums, the affinities against the paper's formula, the estimators."""
import math

import numpy as np
import pytest
import torch

from iconlearn import SNE, TSNE, ParametricTSNE
from iconlearn.metrics import knn_accuracy
from iconlearn.tsne import affinities as A
from iconlearn.tsne import gradients as G
from iconlearn.tsne import _numba
from iconlearn.tsne.interpolation import kernel_sums

torch.set_num_threads(1)


def blobs(n=120, d=8, k=3, seed=0, spread=6.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * spread
    y = np.arange(n) % k
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.fixture(scope="module")
def small():
    X, y = blobs(200, 10, 4)
    sq, idx = A.nearest_neighbors(X, 45)
    return X, y, sq, idx


# ---------------------------------------------------------------- interpolation
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_kernel_sums_match_direct_sums_and_converge(dim):
    g = torch.Generator().manual_seed(dim)
    y = torch.randn(300, dim, generator=g, dtype=torch.float64) * (4 if dim < 3 else 1.5)
    c = torch.cat([torch.ones(300, 1, dtype=torch.float64), y], 1)
    kern = lambda d2: (1 + d2) ** -2  # noqa: E731
    ref = kern(torch.cdist(y, y) ** 2) @ c
    sizes = {1: (20, 80), 2: (20, 80), 3: (6, 16)}[dim]  # 3-D grids grow as M^3: keep the test small
    errs = [float((kernel_sums(y, y, c, kern, min_intervals=m) - ref).norm() / ref.norm()) for m in sizes]
    assert errs[1] < errs[0] and errs[1] < (2e-3 if dim < 3 else 2e-2)


def test_kernel_sums_separate_targets():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(300, 2, generator=g, dtype=torch.float64), torch.randn(50, 2, generator=g, dtype=torch.float64)
    c = torch.rand(300, 2, generator=g, dtype=torch.float64)
    kern = lambda d2: torch.exp(-d2)  # noqa: E731
    ref = kern(torch.cdist(t, s) ** 2) @ c
    assert torch.allclose(kernel_sums(t, s, c, kern, min_intervals=100), ref, atol=1e-3 * float(ref.abs().max()))


@pytest.mark.skipif(not _numba.HAVE_NUMBA, reason="numba not installed")
@pytest.mark.parametrize("separate", [False, True])
def test_fused_2d_spread_and_gather_match_the_torch_path(monkeypatch, separate):
    """The numba loops for 2-D grids compute the same node charges and interpolation as torch."""
    from iconlearn.tsne import interpolation

    g = torch.Generator().manual_seed(3)
    s = torch.randn(400, 2, generator=g, dtype=torch.float64) * 6
    t = torch.randn(60, 2, generator=g, dtype=torch.float64) * 4 if separate else s
    c = torch.randn(400, 4, generator=g, dtype=torch.float64)
    kern = lambda d2: (1 + d2) ** -2  # noqa: E731
    monkeypatch.setattr(interpolation, "FUSED", True)
    fused = kernel_sums(t, s, c, kern, min_intervals=30)
    monkeypatch.setattr(interpolation, "FUSED", False)
    torch_path = kernel_sums(t, s, c, kern, min_intervals=30)
    torch.testing.assert_close(fused, torch_path, rtol=1e-10, atol=1e-10)


# ---------------------------------------------------------------- affinities
def test_joint_affinities_formula(small):
    X, _, sq, idx = small
    perp = 12.0
    P = A.joint_affinities(sq, idx, perp)
    n = len(X)
    dense = P.to_dense().double()
    assert dense.sum().item() == pytest.approx(1.0)
    assert torch.allclose(dense, dense.T)
    assert dense.diagonal().abs().max() == 0
    # reference: p(j|i) with a per-row bisection on sigma_i, written from the paper (float64)
    cond = np.zeros((n, n))
    for i in range(n):
        d = sq[i].numpy()
        lo, hi = 0.0, 1e6
        for _ in range(100):
            beta = (lo + hi) / 2
            w = np.exp(-(d - d.min()) * beta)
            p = w / w.sum()
            h = -(p[p > 0] * np.log(p[p > 0])).sum()
            lo, hi = (beta, hi) if h > math.log(perp) else (lo, beta)
        cond[i, idx[i].numpy()] = p
    ref = (cond + cond.T) / (2 * n)
    assert np.abs(dense.numpy() - ref).max() < 1e-6


def test_conditional_affinities_have_the_perplexity(small):
    _, _, sq, idx = small
    P = A.conditional_affinities(sq, idx, 10.0, len(sq)).to_dense().double()
    H = -(P * torch.log(P.clamp_min(1e-300))).sum(1)
    assert torch.allclose(P.sum(1), torch.ones(len(sq), dtype=torch.float64))
    assert torch.allclose(H.exp(), torch.full_like(H, 10.0), rtol=1e-3)


def test_from_matrix():
    M = np.random.default_rng(0).random((6, 6))
    P = A.from_matrix(M, symmetric=True).to_dense().double().numpy()
    ref = M + M.T
    np.fill_diagonal(ref, 0)
    assert np.allclose(P, ref / ref.sum())
    with pytest.raises(ValueError, match="square"):
        A.from_matrix(np.ones((3, 4)), True)
    with pytest.raises(ValueError, match="non-negative"):
        A.from_matrix(-np.ones((3, 3)), True)


# ---------------------------------------------------------------- gradients = autograd of the I-Con loss
@pytest.mark.parametrize("dof", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("method", ["exact", "fft"])
def test_tsne_gradient_is_the_icon_gradient(small, dof, method):
    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0)
    y = (torch.randn(len(sq), 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 3).requires_grad_()
    loss = G.tsne_exact_loss(P.to_dense(), y, dof)
    (auto,) = torch.autograd.grad(loss, y)
    grad, kl = G.tsne_gradient(y.detach(), P, dof, 1.0, method, {"min_intervals": 150}, with_kl=True)
    tol = 1e-10 if method == "exact" else 1e-4
    assert float((grad - auto / 4).norm() / auto.norm()) < tol
    assert float(kl) == pytest.approx(loss.item(), rel=1e-8 if method == "exact" else 1e-5)


def test_exaggeration_scales_only_the_attraction(small):
    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0)
    y = torch.randn(len(sq), 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64).requires_grad_()
    log_w = -torch.log1p(torch.cdist(y, y) ** 2)
    attraction = -(P.to_dense() * log_w).sum()  # -sum p log w
    (ga,) = torch.autograd.grad(attraction, y)
    g1, _ = G.tsne_gradient(y.detach(), P, 1.0, 1.0, "exact")
    g12, _ = G.tsne_gradient(y.detach(), P, 1.0, 12.0, "exact")
    assert torch.allclose(g12 - g1, 11.0 * ga / 4, atol=1e-12)


@pytest.mark.skipif(not _numba.HAVE_NUMBA, reason="numba not installed")
def test_fused_attraction_equals_torch(small, monkeypatch):
    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0).to("cpu", torch.float64)
    y = torch.randn(len(sq), 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 2
    fused, f_log = G._attraction(P, y, 0.7)
    monkeypatch.setattr(G, "FUSED", False)
    plain, p_log = G._attraction(P, y, 0.7)
    assert torch.allclose(fused, plain, atol=1e-12) and float(f_log()) == pytest.approx(float(p_log()))


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_sne_gradient_is_the_icon_gradient(small, method):
    _, _, sq, idx = small
    P = A.conditional_affinities(sq, idx, 15.0, len(sq))
    y = torch.randn(len(sq), 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64).requires_grad_()
    loss = G.sne_exact_loss(P.to_dense(), y)
    (auto,) = torch.autograd.grad(loss, y)
    grad, kl = G.sne_gradient(y.detach(), P, 1.0, method, {"min_intervals": 150}, with_kl=True)
    assert float((grad - auto / 4).norm() / auto.norm()) < (1e-10 if method == "exact" else 1e-3)
    assert float(kl) == pytest.approx(float(loss), rel=1e-4)


@pytest.mark.parametrize("dof", [1.0, None])
@pytest.mark.parametrize("method", ["exact", "fft"])
def test_reference_gradient_is_rowwise_icon_gradient(small, dof, method):
    """New points: each row's own KL(p(.|i) || q(.|i)) over the frozen reference points."""
    from iconlearn.core import icon_loss
    from iconlearn.learned.kernels import GaussianKernel, StudentTKernel

    X, _, _, _ = small
    ref = torch.randn(len(X), 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * 3
    P = A.reference_affinities(X[:30] + 0.1, X, 5.0, 20)
    y = ref[:30].clone().add_(0.5).requires_grad_()
    kernel = GaussianKernel() if dof is None else StudentTKernel(dof)
    loss = icon_loss(P.to_dense().double(), kernel(y, ref), reduction="sum")
    (auto,) = torch.autograd.grad(loss, y)
    fft = {"min_intervals": 150} if method == "fft" else None
    grad = G.reference_gradient(y.detach(), P.to("cpu", torch.float64), ref, dof, 1.0, method, fft)
    assert float((grad - auto / 4).norm() / auto.norm()) < (1e-10 if method == "exact" else 2e-3)


# ---------------------------------------------------------------- estimators
def test_tsne_separates_clusters_and_is_reproducible():
    X, y = blobs(150, 10, 3)
    a = TSNE(perplexity=10, random_state=0, n_iter=100, early_exaggeration_iter=100)
    Y = a.fit_transform(X)
    assert Y.shape == (150, 2) and np.isfinite(Y).all()
    assert knn_accuracy(Y, y, k=5) == 1.0
    assert a.n_iter_ == 200 and set(a.timings_) >= {"neighbors", "affinities", "optimization"}
    assert a.kl_divergence_ == pytest.approx(a.exact_loss(), rel=1e-6)
    b = TSNE(perplexity=10, random_state=0, n_iter=100, early_exaggeration_iter=100).fit(X)
    assert np.array_equal(a.embedding_, b.embedding_)


def test_tsne_fft_path_matches_exact_quality():
    X, y = blobs(200, 10, 3, seed=1)
    Y = TSNE(perplexity=15, random_state=0, negative_gradient_method="fft", n_iter=60,
             early_exaggeration_iter=60).fit_transform(X)
    assert knn_accuracy(Y, y, k=5) > 0.97


def test_torch_input_gives_torch_output_and_transform():
    X, y = blobs(160, 6, 2, seed=2)
    est = TSNE(perplexity=8, random_state=0, n_iter=80, early_exaggeration_iter=80)
    Y = est.fit_transform(torch.tensor(X[:120]))
    assert isinstance(Y, torch.Tensor) and Y.shape == (120, 2)
    new = est.transform(X[120:])
    assert new.shape == (40, 2) and np.isfinite(new).all()
    assert knn_accuracy(est.embedding_, y[:120], k=5, X_test=new, y_test=y[120:]) == 1.0


def test_sne_and_precomputed_inputs():
    X, y = blobs(100, 6, 2, seed=3)
    Y = SNE(perplexity=10, random_state=0, n_iter=80, early_exaggeration_iter=80).fit_transform(X)
    assert knn_accuracy(Y, y, k=5) == 1.0
    sq, idx = A.nearest_neighbors(X, 30)
    Y2 = TSNE(perplexity=10, random_state=0, n_iter=50, early_exaggeration_iter=50).fit_transform(X, neighbors=(sq.sqrt().numpy(), idx.numpy()))
    assert knn_accuracy(Y2, y, k=5) == 1.0
    P = A.joint_affinities(sq, idx, 10.0).to_dense().numpy()
    Y3 = TSNE(random_state=0, n_iter=50, early_exaggeration_iter=50, perplexity=10).fit_transform(affinities=P)
    assert Y3.shape == (100, 2) and knn_accuracy(Y3, y, k=5) == 1.0


def test_parametric_tsne():
    X, y = blobs(200, 8, 2, seed=4)
    est = ParametricTSNE(perplexity=10, batch_size=100, n_epochs=8, random_state=0)
    Y = est.fit_transform(X[:160])
    assert Y.shape == (160, 2) and np.isfinite(Y).all() and est.n_iter_ == 8 * 1
    new = est.transform(X[160:])
    assert knn_accuracy(Y, y[:160], k=5, X_test=new, y_test=y[160:]) == 1.0
    again = ParametricTSNE(perplexity=10, batch_size=100, n_epochs=8, random_state=0).fit(X[:160]).embedding_
    assert np.allclose(Y, again)
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :3])


# ---------------------------------------------------------------- bad input
_BAD_INPUT = [
    ({"perplexity": 30}, np.random.rand(20, 3), "perplexity must be smaller"),
    ({"perplexity": 0}, np.random.rand(20, 3), "perplexity must be positive"),
    ({"perplexity": -5}, np.random.rand(20, 3), "perplexity must be positive"),
    ({"n_components": 0}, np.random.rand(20, 3), "n_components"),
    ({"perplexity": 1}, np.random.rand(3, 3), "at least 4 points"),
    ({}, np.array([[np.nan, 1.0]] * 50), "NaN"),
    ({}, np.array([[np.inf, 1.0]] * 50), "NaN or Inf"),
    ({"n_components": 4, "negative_gradient_method": "fft"}, np.random.rand(50, 5), "1-3 components"),
    ({"learning_rate": -1}, np.random.rand(50, 3), "learning_rate"),
]
_NON_PARAMETRIC_ONLY = ("negative_gradient_method", "learning_rate")  # not ParametricTSNE parameters


@pytest.mark.parametrize("cls, kw, X, match", [
    (cls, kw, X, match) for cls in (TSNE, SNE, ParametricTSNE) for kw, X, match in _BAD_INPUT
    if not (cls is ParametricTSNE and any(k in kw for k in _NON_PARAMETRIC_ONLY))
])
def test_bad_input_messages(cls, kw, X, match):
    with pytest.raises(ValueError, match=match):
        cls(**kw).fit(X)


def test_duplicates_float16_and_wrong_features():
    X, y = blobs(60, 5, 2, seed=5)
    X = np.concatenate([X, X, X[:10]])  # exact duplicates
    Y = TSNE(perplexity=10, random_state=0, n_iter=40, early_exaggeration_iter=40).fit_transform(X.astype(np.float16))
    assert Y.shape == (130, 2) and np.isfinite(Y).all()
    same = TSNE(perplexity=5, random_state=0, n_iter=20, early_exaggeration_iter=20).fit_transform(np.ones((30, 4)))  # all identical
    assert np.isfinite(same).all()
    est = TSNE(perplexity=5, random_state=0, n_iter=1, early_exaggeration_iter=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        est.transform(np.ones((3, 2)))
    with pytest.raises(ValueError, match="not fitted"):
        TSNE().transform(X)


def test_embed_command(tmp_path):
    from iconlearn.cli import main

    X, y = blobs(80, 6, 2, seed=6)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    out = tmp_path / "run"
    assert main(["embed", "--features", str(tmp_path / "X.npy"), "--labels", str(tmp_path / "y.npy"),
                 "--perplexity", "10", "--n-iter", "100", "--out", str(out), "--quiet"]) == 0
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["knn_accuracy_k10"] == 1.0 and (out / "embedding.png").stat().st_size > 1000
    assert np.load(out / "embedding.npy").shape == (80, 2)
    assert main(["embed", "--features", str(tmp_path / "missing.npy")]) == 2
    assert main(["embed", "--features", str(tmp_path / "X.npy"), "--perplexity", "-1"]) == 2

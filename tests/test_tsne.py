"""SNE / t-SNE as I-Con: every approximate gradient (Barnes-Hut, FFT interpolation; the compiled CPU
path and the torch path) against autograd of the exact icon_loss, the compiled kernels against
their torch references, the affinities against the paper's formula, the estimators' contract."""
import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from iconlearn import SNE, TSNE, ParametricTSNE
from iconlearn.metrics import knn_accuracy
from iconlearn.tsne import _numba as K
from iconlearn.tsne import affinities as A
from iconlearn.tsne import gradients as G
from iconlearn.tsne.cpu import Tasks, TSNEDescent
from iconlearn.tsne.interpolation import kernel_sums
from iconlearn.tsne.optimizer import GainsOptimizer

needs_numba = pytest.mark.skipif(not K.HAVE_NUMBA, reason="numba not installed")
FAST = dict(random_state=0, n_jobs=1)


def blobs(n=120, d=8, k=3, seed=0, spread=6.0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * spread
    y = np.arange(n) % k
    return (centers[y] + rng.normal(size=(n, d))).astype(np.float32), y


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The torch references on one thread (small tensors: more threads only wait), restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small():
    X, y = blobs(200, 10, 4)
    sq, idx = A.nearest_neighbors(X, 45)
    return X, y, sq, idx


def _embedding(n, dim, seed, scale=3.0):
    return torch.randn(n, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def _exact_grad(P, y, dof):
    """The I-Con gradient: autograd of KL(P || Q) computed literally, on openTSNE's scale (/4)."""
    y = y.clone().requires_grad_()
    loss = G.tsne_exact_loss(P.to_dense(), y, dof)
    (g,) = torch.autograd.grad(loss, y)
    return g / 4, loss.item()


def _cpu_grad(P, y, dof, method, theta=0.5, fft=None, n_threads=1):
    """Gradient and KL of the compiled CPU path at y (after its Morton renumbering)."""
    D = TSNEDescent(y.numpy(), P, dof, method, theta, fft=fft, n_threads=n_threads)
    D._reorder()
    z, s = D._forces(True)
    c = D.e / D.dof
    g = np.empty_like(D.y)
    g[D.perm] = c * D.attr - (c / z) * D.rep
    D.close()
    return torch.from_numpy(g), D._kl(z, s)


def _rel(a, b):
    return float((a - b).norm() / b.norm())


# ---------------------------------------------------------------- interpolation
@pytest.mark.parametrize("dim", [1, 2, 3])
def test_kernel_sums_match_direct_sums_and_converge(dim):
    y = _embedding(300, dim, dim, 4 if dim < 3 else 1.5)
    c = torch.cat([torch.ones(300, 1, dtype=torch.float64), y], 1)
    kern = lambda d2: (1 + d2) ** -2  # noqa: E731
    ref = kern(torch.cdist(y, y) ** 2) @ c
    sizes = {1: (20, 80), 2: (20, 80), 3: (6, 16)}[dim]  # 3-D grids grow as M^3: keep the test small
    errs = [_rel(kernel_sums(y, y, c, kern, min_intervals=m), ref) for m in sizes]
    assert errs[1] < errs[0] and errs[1] < (2e-3 if dim < 3 else 2e-2)


def test_kernel_sums_separate_targets():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(300, 2, generator=g, dtype=torch.float64), torch.randn(50, 2, generator=g, dtype=torch.float64)
    c = torch.rand(300, 2, generator=g, dtype=torch.float64)
    kern = lambda d2: torch.exp(-d2)  # noqa: E731
    ref = kern(torch.cdist(t, s) ** 2) @ c
    assert torch.allclose(kernel_sums(t, s, c, kern, min_intervals=100), ref, atol=1e-3 * float(ref.abs().max()))


@needs_numba
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("separate", [False, True])
def test_compiled_spread_and_gather_match_the_torch_path(monkeypatch, dim, separate):
    """The compiled loops compute the same node charges and interpolation as the torch path."""
    from iconlearn.tsne import interpolation

    s = _embedding(400, dim, 3, 6)
    t = _embedding(60, dim, 4, 4) if separate else s
    c = torch.randn(400, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    kern = lambda d2: (1 + d2) ** -2  # noqa: E731
    grid = dict(min_intervals=30 if dim < 3 else 6, ints_in_interval=1e3)  # exactly min_intervals per side
    monkeypatch.setattr(interpolation, "FUSED", True)
    fused = kernel_sums(t, s, c, kern, **grid)
    monkeypatch.setattr(interpolation, "FUSED", False)
    torch.testing.assert_close(fused, kernel_sums(t, s, c, kern, **grid), rtol=1e-10, atol=1e-10)


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


@needs_numba
def test_compiled_calibration_equals_the_torch_one(small):
    from iconlearn.supervisory.gaussian import calibrate

    _, _, sq, idx = small
    for perp in (3.0, 15.0, 44.0):
        torch.testing.assert_close(A.calibrated(sq, perp, n_threads=2), calibrate(sq, perp)[0], rtol=1e-5, atol=1e-7)


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


def test_perplexity_is_lowered_with_a_warning_as_openTSNE_does():
    with pytest.warns(UserWarning, match="too large for 19 neighbours.*6.33"):
        assert A.effective_perplexity(30, 19) == pytest.approx(19 / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert A.effective_perplexity(10, 30) == 10
    X, _ = blobs(20, 4, 2)
    with pytest.warns(UserWarning, match="perplexity"):
        est = TSNE(**FAST, n_iter=5, early_exaggeration_iter=5).fit(X)
    assert est.perplexity_ == pytest.approx(19 / 3)


# ---------------------------------------------------------------- gradients = autograd of the I-Con loss
@pytest.mark.parametrize("dof", [1.0, 0.5, 3.0])
@pytest.mark.parametrize("method", ["exact", "fft"])
def test_torch_gradient_is_the_icon_gradient(small, dof, method):
    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0)
    y = _embedding(len(sq), 2, 1)
    auto, loss = _exact_grad(P, y, dof)
    grad, kl = G.tsne_gradient(y, P, dof, 1.0, method, {"min_intervals": 150}, with_kl=True)
    assert _rel(grad, auto) < (1e-10 if method == "exact" else 3e-4)
    assert float(kl) == pytest.approx(loss, rel=1e-8 if method == "exact" else 1e-5)


@needs_numba
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("dof", [1.0, 0.6])
def test_barnes_hut_is_the_icon_gradient(small, dim, dof):
    """Barnes-Hut with theta = 0 opens every node: the exact gradient and KL; the error grows with
    theta and stays near openTSNE's at its default 0.5 (about 3% of the gradient's norm)."""
    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0)
    y = _embedding(len(sq), dim, 2)
    auto, loss = _exact_grad(P, y, dof)
    exact, _ = G.tsne_gradient(y, P, dof, 1.0, "exact")
    for threads in (1, 2):
        grad, kl = _cpu_grad(P, y, dof, "bh", 0.0, n_threads=threads)
        assert _rel(grad, exact) < 1e-12 and kl == pytest.approx(loss, rel=1e-10)
        assert _rel(grad, auto) < 1e-7  # autograd through 1-D near-coincident pairs loses a few digits
    errors = [_rel(_cpu_grad(P, y, dof, "bh", theta)[0], auto) for theta in (0.2, 0.5, 0.9)]
    assert 0 < errors[0] < errors[1] < errors[2] and errors[1] < 0.06


@needs_numba
def test_barnes_hut_handles_duplicates_and_a_single_cluster(small):
    """Points on top of each other share a leaf at the finest level; the exact sums still hold."""
    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0)
    y = _embedding(len(sq), 2, 3)
    y[100:] = y[:100]  # every point has a duplicate
    y[:10] = 0.0  # and ten coincide
    auto, loss = _exact_grad(P, y, 1.0)
    grad, kl = _cpu_grad(P, y, 1.0, "bh", 0.0)
    assert _rel(grad, auto) < 1e-10 and kl == pytest.approx(loss, rel=1e-10)


@needs_numba
@pytest.mark.parametrize("dim", [1, 2])
def test_compiled_fft_gradient_is_the_icon_gradient(small, dim):
    """The compiled FFT path equals the torch FFT path on the same grid, and both converge to the
    exact gradient as the grid is refined."""
    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0)
    y = _embedding(len(sq), dim, 4, 5)
    auto, loss = _exact_grad(P, y, 1.0)
    coarse, fine = {"min_intervals": 20}, {"min_intervals": 300}
    ref, _ = G.tsne_gradient(y, P, 1.0, 1.0, "fft", {"n_interp": 3, **coarse})
    g_coarse, _ = _cpu_grad(P, y, 1.0, "fft", fft=coarse, n_threads=2)
    assert _rel(g_coarse, ref) < 1e-5  # float32 FFT against the float64 torch path
    g_fine, kl = _cpu_grad(P, y, 1.0, "fft", fft=fine)
    assert _rel(g_fine, auto) < 1e-3 < _rel(g_coarse, auto) and kl == pytest.approx(loss, rel=1e-4)


def test_device_grids_read_back_once_in_ten_iterations(small):
    """The torch path's grids on an accelerator: the interval count is read from the host every 10
    iterations, the grid is stretched over the points on the device in between, and the gradient
    stays the interpolation gradient."""
    from iconlearn.tsne.interpolation import DeviceGrids, Grid

    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0)
    grids = DeviceGrids(min_intervals=100, every=10)
    counts = []
    for it in range(12):
        y = _embedding(len(sq), 2, 1, 3.0 + 10 * it)  # growing: 100 intervals, then more
        g = grids(y)
        counts.append(g.n_boxes)
        assert isinstance(g.box, torch.Tensor)
        assert float(g.lo[0]) <= float(y.min()) and float(g.lo[0] + g.width) >= float(y.max())
    assert counts[:10] == [100] * 10 and counts[10] == counts[11] > 100
    y = _embedding(len(sq), 2, 1)
    auto, _ = _exact_grad(P, y, 1.0)
    grad, _ = G.tsne_gradient(y, P, 1.0, 1.0, "fft", {}, grid=Grid.stretched(y, 150))
    assert _rel(grad, auto) < 3e-4


def test_exaggeration_scales_only_the_attraction(small):
    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0)
    y = _embedding(len(sq), 2, 2, 1.0).requires_grad_()
    log_w = -torch.log1p(torch.cdist(y, y) ** 2)
    attraction = -(P.to_dense() * log_w).sum()  # -sum p log w
    (ga,) = torch.autograd.grad(attraction, y)
    g1, _ = G.tsne_gradient(y.detach(), P, 1.0, 1.0, "exact")
    g12, _ = G.tsne_gradient(y.detach(), P, 1.0, 12.0, "exact")
    assert torch.allclose(g12 - g1, 11.0 * ga / 4, atol=1e-12)


@needs_numba
def test_compiled_attraction_equals_torch(small):
    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0).to("cpu", torch.float64)
    y = _embedding(len(sq), 2, 3, 2.0)
    plain, p_log = G._attraction(P, y, 0.7)
    out = np.empty((len(sq), 2))
    s = K.attraction(P.crow.numpy(), P.cols.numpy(), P.values.numpy(), y.numpy(), 1 / 0.7, out, 0, len(sq), True)
    assert np.allclose(out, plain.numpy(), atol=1e-12) and s == pytest.approx(float(p_log()))


@needs_numba
def test_compiled_step_equals_the_torch_optimizer():
    rng = np.random.default_rng(0)
    y, grad = rng.normal(size=(50, 2)), rng.normal(size=(50, 2))
    update, gains = rng.normal(size=(50, 2)), rng.uniform(0.01, 2, (50, 2))
    ty = torch.tensor(y)
    opt = GainsOptimizer(ty)
    opt.update, opt.gains = torch.tensor(update), torch.tensor(gains)
    opt.step(ty, torch.tensor(grad), 0.3, 0.8, max_step_norm=1.5, max_grad_norm=1.0)
    K.gains_step(y, grad, np.zeros_like(y), 1.0, 0.0, update, gains, 0.3, 0.8, 0.01, 1.5, 1.0, True)
    assert np.allclose(y, ty.numpy(), atol=1e-12) and np.allclose(gains, opt.gains.numpy(), atol=1e-12)
    assert np.allclose(update, opt.update.numpy(), atol=1e-12)


@needs_numba
def test_cpu_descent_follows_the_exact_torch_descent(small):
    """Ten steps of the compiled path (theta = 0, renumbered points, two threads) land where the
    torch path with the exact gradient does."""
    from iconlearn.tsne.optimizer import TorchDescent

    _, _, sq, idx = small
    P = A.joint_affinities(sq, idx, 15.0)
    y0 = _embedding(len(sq), 2, 7, 1.0)
    cpu = TSNEDescent(y0.numpy(), P, 1.0, "bh", 0.0, n_threads=2)
    ref = TorchDescent(y0.clone(), lambda y, exag, kl: G.tsne_gradient(y, P, 1.0, exag, "exact", with_kl=kl))
    for it in range(10):
        exag = 12.0 if it < 5 else 1.0
        a = cpu.step(exag, 20.0, 0.8, want_kl=True)
        b = ref.step(exag, 20.0, 0.8, want_kl=True)
        assert a == pytest.approx(b, rel=1e-9)
    cpu.close()
    assert np.allclose(cpu.embedding, ref.embedding, atol=1e-9)
    assert cpu.kl() == pytest.approx(ref.kl(), rel=1e-9)


def test_tasks_run_every_task_once_in_order():
    for threads in (1, 3):
        tasks = Tasks(threads)
        assert tasks.run([lambda i=i: i * i for i in range(20)]) == [i * i for i in range(20)]
        assert sum(b - a for a, b in tasks.ranges(103)) == 103
        with pytest.raises(ZeroDivisionError):
            tasks.run([lambda: 1 / 0, lambda: 2])
        tasks.close()


@pytest.mark.parametrize("method", ["exact", "fft"])
def test_sne_gradient_is_the_icon_gradient(small, method):
    _, _, sq, idx = small
    P = A.conditional_affinities(sq, idx, 15.0, len(sq))
    y = _embedding(len(sq), 2, 4, 1.0).requires_grad_()
    loss = G.sne_exact_loss(P.to_dense(), y)
    (auto,) = torch.autograd.grad(loss, y)
    grad, kl = G.sne_gradient(y.detach(), P, 1.0, method, {"min_intervals": 150}, with_kl=True)
    assert _rel(grad, auto / 4) < (1e-10 if method == "exact" else 1e-3)
    assert float(kl) == pytest.approx(float(loss), rel=1e-4)


@pytest.mark.parametrize("dof", [1.0, None])
@pytest.mark.parametrize("method", ["exact", "fft"])
def test_reference_gradient_is_rowwise_icon_gradient(small, dof, method):
    """New points: each row's own KL(p(.|i) || q(.|i)) over the frozen reference points."""
    from iconlearn.core import icon_loss
    from iconlearn.learned.kernels import GaussianKernel, StudentTKernel

    X, _, _, _ = small
    ref = _embedding(len(X), 2, 5)
    P = A.reference_affinities(X[:30] + 0.1, X, 5.0, 20)
    y = ref[:30].clone().add_(0.5).requires_grad_()
    kernel = GaussianKernel() if dof is None else StudentTKernel(dof)
    loss = icon_loss(P.to_dense().double(), kernel(y, ref), reduction="sum")
    (auto,) = torch.autograd.grad(loss, y)
    fft = {"min_intervals": 150} if method == "fft" else None
    grad = G.reference_gradient(y.detach(), P.to("cpu", torch.float64), ref, dof, 1.0, method, fft)
    assert _rel(grad, auto / 4) < (1e-10 if method == "exact" else 2e-3)


# ---------------------------------------------------------------- estimators
@pytest.mark.parametrize("method", ["bh", "fft", "exact"])
def test_tsne_separates_clusters_and_is_reproducible(method):
    X, y = blobs(150, 10, 3)
    kw = dict(FAST, perplexity=10, n_iter=100, early_exaggeration_iter=100, negative_gradient_method=method)
    a = TSNE(**kw)
    Y = a.fit_transform(X)
    assert Y.shape == (150, 2) and np.isfinite(Y).all() and Y.dtype == np.float32
    assert knn_accuracy(Y, y, k=5) == 1.0
    assert a.n_iter_ == 200 and set(a.timings_) >= {"neighbors", "affinities", "optimization"}
    assert a.method_ == method and [it for it, _ in a.kl_history_] == [50, 100, 150, 200]
    assert a.kl_divergence_ == pytest.approx(a.exact_loss(), rel=1e-6 if method == "exact" else 2e-2)
    b = TSNE(**kw).fit(X)
    assert np.array_equal(a.embedding_, b.embedding_)


def test_auto_method_and_n_jobs_give_the_same_embedding():
    X, y = blobs(300, 6, 3, seed=1)
    kw = dict(perplexity=10, random_state=0, n_iter=30, early_exaggeration_iter=30)
    one = TSNE(**kw, n_jobs=1).fit(X)
    assert one.method_ == "bh"
    assert np.allclose(one.embedding_, TSNE(**kw, n_jobs=2).fit(X).embedding_, atol=1e-5)


@pytest.mark.parametrize("method", ["fft", "exact"])
def test_the_torch_path_without_numba(monkeypatch, method):
    """What runs on the GPU, or where numba is missing: torch's descent, grids kept on the device."""
    from iconlearn.tsne import interpolation

    monkeypatch.setattr(K, "HAVE_NUMBA", False)
    monkeypatch.setattr(interpolation, "FUSED", False)
    X, y = blobs(150, 10, 3)
    est = TSNE(**FAST, perplexity=10, n_iter=60, early_exaggeration_iter=60, negative_gradient_method=method).fit(X)
    assert est.method_ == method and knn_accuracy(est.embedding_, y, k=5) == 1.0
    assert [it for it, _ in est.kl_history_] == [50, 100] and np.isfinite(est.kl_divergence_)
    with pytest.raises(ValueError, match="Barnes-Hut runs on the CPU"):
        TSNE(negative_gradient_method="bh").fit(X)


def test_torch_input_gives_torch_output_and_transform():
    X, y = blobs(160, 6, 2, seed=2)
    est = TSNE(**FAST, perplexity=8, n_iter=80, early_exaggeration_iter=80)
    Y = est.fit_transform(torch.tensor(X[:120]))
    assert isinstance(Y, torch.Tensor) and Y.shape == (120, 2)
    new = est.transform(X[120:])
    assert new.shape == (40, 2) and np.isfinite(new).all()
    assert knn_accuracy(est.embedding_, y[:120], k=5, X_test=new, y_test=y[120:]) == 1.0


def test_float64_in_float64_out():
    X, _ = blobs(80, 5, 2, seed=2)
    for est in (TSNE(**FAST, perplexity=8, n_iter=10, early_exaggeration_iter=10),
                ParametricTSNE(**FAST, perplexity=8, n_epochs=1, batch_size=40)):
        assert est.fit_transform(X.astype(np.float64)).dtype == np.float64
        assert est.transform(X.astype(np.float64)).dtype == np.float64
        assert est.fit_transform(X).dtype == np.float32


def test_sne_and_precomputed_inputs():
    X, y = blobs(100, 6, 2, seed=3)
    Y = SNE(**FAST, perplexity=10, n_iter=80, early_exaggeration_iter=80).fit_transform(X)
    assert knn_accuracy(Y, y, k=5) == 1.0
    sq, idx = A.nearest_neighbors(X, 30)
    kw = dict(FAST, perplexity=10, n_iter=50, early_exaggeration_iter=50)
    Y2 = TSNE(**kw).fit_transform(X, neighbors=(sq.sqrt().numpy(), idx.numpy()))
    assert knn_accuracy(Y2, y, k=5) == 1.0
    P = A.joint_affinities(sq, idx, 10.0).to_dense().numpy()
    with pytest.warns(UserWarning, match="spectral"):  # no X for PCA
        Y3 = TSNE(**kw).fit_transform(affinities=P)
    assert Y3.shape == (100, 2) and knn_accuracy(Y3, y, k=5) == 1.0


def test_precomputed_distances_give_the_euclidean_affinities():
    from scipy.spatial.distance import cdist

    X, y = blobs(120, 6, 3, seed=4)
    kw = dict(FAST, perplexity=10, n_iter=60, early_exaggeration_iter=60)
    D = cdist(X, X)
    est = TSNE(**kw, metric="precomputed")
    with pytest.warns(UserWarning, match="spectral"):  # no data matrix for PCA
        est.fit(D)
    ref = TSNE(**kw).fit(X)
    assert np.allclose(est.affinities_.to_dense().numpy(), ref.affinities_.to_dense().numpy(), atol=1e-7)
    assert knn_accuracy(est.embedding_, y, k=5) == 1.0
    new = est.transform(D[:10])  # distances from new points to the training points
    assert new.shape == (10, 2) and knn_accuracy(est.embedding_, y, k=5, X_test=new, y_test=y[:10]) == 1.0
    with pytest.raises(ValueError, match="square"):
        TSNE(**kw, metric="precomputed").fit(D[:50])
    with pytest.raises(ValueError, match="Negative"):
        TSNE(**kw, metric="precomputed").fit(-D)


def test_sparse_input_gives_the_dense_affinities_and_embedding_quality():
    X, y = blobs(120, 8, 3, seed=5)
    X[X < 0] = 0  # some zeros
    kw = dict(FAST, perplexity=10, n_iter=40, early_exaggeration_iter=40)
    dense = TSNE(**kw).fit(X)
    for fmt in ("csr", "csc", "coo"):
        est = TSNE(**kw).fit(sp.csr_matrix(X).asformat(fmt))
        assert np.allclose(est.affinities_.to_dense().numpy(), dense.affinities_.to_dense().numpy(), atol=1e-7)
        assert knn_accuracy(est.embedding_, y, k=5) == 1.0
        new = est.transform(sp.csr_matrix(X[:5]))
        assert np.allclose(new, est.transform(X[:5]), atol=1e-4)


def test_sparse_input_to_parametric_tsne():
    X, y = blobs(120, 8, 3, seed=5)
    X[X < 0] = 0
    kw = dict(FAST, perplexity=10, n_epochs=3, batch_size=60)
    dense = ParametricTSNE(**kw).fit(X)
    est = ParametricTSNE(**kw).fit(sp.csr_matrix(X))
    # the same training up to float32 rounding, which Adam's normalised steps carry into the weights
    assert np.allclose(est.embedding_, dense.embedding_, atol=2e-2)
    assert np.allclose(est.transform(sp.csc_matrix(X[:5])), est.embedding_[:5], atol=1e-6)
    assert knn_accuracy(est.embedding_, y, k=5) == knn_accuracy(dense.embedding_, y, k=5)


def test_sparse_pca_init_matches_dense():
    from iconlearn.tsne.initialization import _sparse_pca

    rng = np.random.default_rng(0)
    X = sp.random(300, 40, density=0.2, random_state=0, format="csr") * 10
    Xd = X.toarray()
    ref = (Xd - Xd.mean(0)) @ np.linalg.svd(Xd - Xd.mean(0), full_matrices=False)[2][:2].T
    out = _sparse_pca(X, 2, rng)
    assert np.allclose(np.abs(out), np.abs(ref), atol=1e-6)


def test_spectral_init_separates_components():
    from iconlearn.tsne.initialization import spectral_init

    X, y = blobs(90, 5, 3, seed=6, spread=20)
    sq, idx = A.nearest_neighbors(X, 15)
    P = A.joint_affinities(sq, idx, 5.0).to_dense().numpy()
    Y = spectral_init(sp.csr_matrix(P), 2, 0)
    assert Y.shape == (90, 2) and np.std(Y[:, 0]) == pytest.approx(1e-4, rel=0.05)
    assert knn_accuracy(Y, y, k=5) == 1.0
    assert np.allclose(Y, spectral_init(sp.csr_matrix(P), 2, 0))


def test_parametric_tsne():
    X, y = blobs(200, 8, 2, seed=4)
    est = ParametricTSNE(**FAST, perplexity=10, batch_size=100, n_epochs=8)
    Y = est.fit_transform(X[:160])
    assert Y.shape == (160, 2) and np.isfinite(Y).all() and est.n_iter_ == 8 * 1
    new = est.transform(X[160:])
    assert knn_accuracy(Y, y[:160], k=5, X_test=new, y_test=y[160:]) == 1.0
    again = ParametricTSNE(**FAST, perplexity=10, batch_size=100, n_epochs=8).fit(X[:160]).embedding_
    assert np.allclose(Y, again)
    assert ParametricTSNE(**FAST, perplexity=10, batch_size=100, max_iter=2).fit(X).n_iter_ == 4
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :3])


# ---------------------------------------------------------------- openTSNE's and scikit-learn's names
def test_scikit_learn_names_mean_the_same():
    X, _ = blobs(100, 6, 2, seed=7)
    base = dict(FAST, perplexity=10, early_exaggeration_iter=20)
    ref = TSNE(**base, n_iter=30, initialization="random", negative_gradient_method="exact", theta=0.3).fit(X)
    alias = TSNE(**base, max_iter=50, init="random", method="exact", angle=0.3).fit(X)
    assert alias.n_iter_ == ref.n_iter_ == 50 and np.array_equal(alias.embedding_, ref.embedding_)
    both = TSNE(**base, n_iter=30, max_iter=50, init="random", initialization="random", method="exact",
                angle=0.3).fit(X)
    assert np.array_equal(both.embedding_, ref.embedding_)
    assert TSNE(**base, method="barnes_hut").fit(X).method_ == "bh"
    init = np.random.default_rng(0).normal(0, 1e-4, (100, 2))
    assert TSNE(**base, n_iter=0, early_exaggeration="auto", init=init, learning_rate=1e-12).fit(X).embedding_ \
        == pytest.approx(init - init.mean(0), abs=1e-8)


@pytest.mark.parametrize("kw, match", [
    (dict(n_iter=30, max_iter=100, early_exaggeration_iter=20), "n_iter=30.*max_iter=100.*disagree"),
    (dict(max_iter=100, early_exaggeration_iter=250), "at least early_exaggeration_iter"),
    (dict(initialization="spectral", init="random"), "initialization='spectral' and init='random'"),
    (dict(negative_gradient_method="fft", method="exact"), "name the same parameter"),
    (dict(theta=0.2, angle=0.7), "theta=0.2 and angle=0.7"),
    (dict(method="barnes"), "negative_gradient_method"),
    (dict(init="pcaa"), "initialization must be one of"),
    (dict(metric="manhattan"), "metric must be one of"),
    (dict(n_jobs=0), "n_jobs"),
    (dict(n_jobs=1.5), "n_jobs"),
    (dict(callbacks=[3]), "callbacks must be callables"),
    (dict(theta=2), "theta"),
    (dict(random_state=-1), "random_state"),
    (dict(random_state="seed"), "random_state"),
    (dict(final_momentum=1.5), "final_momentum"),
    (dict(early_exaggeration="big"), "early_exaggeration"),
    (dict(device="tpu"), "device"),
])
def test_inconsistent_or_bad_parameters_are_named(kw, match):
    X, _ = blobs(40, 4, 2)
    with pytest.raises(ValueError, match=match):
        TSNE(**kw).fit(X)


def test_callbacks_see_every_50_iterations_and_can_stop():
    X, _ = blobs(100, 6, 2, seed=8)
    seen = []

    def cb(iteration, kl, embedding):
        seen.append((iteration, kl, embedding.shape))
        return iteration >= 100

    est = TSNE(**FAST, perplexity=10, n_iter=100, early_exaggeration_iter=60, callbacks=cb).fit(X)
    assert [s[0] for s in seen] == [50, 100] and seen[0][2] == (100, 2)
    assert est.n_iter_ == 100 and [kl for _, kl in est.kl_history_] == [s[1] for s in seen]
    every = TSNE(**FAST, perplexity=10, n_iter=10, early_exaggeration_iter=10, callbacks_every_iters=5).fit(X)
    assert [it for it, _ in every.kl_history_] == [5, 10, 15, 20]


def test_global_state_is_left_alone():
    """Local generators only; torch's, numba's and BLAS's thread counts restored after fit."""
    import numba
    from threadpoolctl import threadpool_info

    X, _ = blobs(60, 5, 2)
    torch.manual_seed(123)
    np.random.seed(123)
    threads, nb = torch.get_num_threads(), numba.get_num_threads()
    pools = [p["num_threads"] for p in threadpool_info()]
    for est in (TSNE(perplexity=5, n_iter=5, early_exaggeration_iter=5, random_state=0, n_jobs=1),
                SNE(perplexity=5, n_iter=5, early_exaggeration_iter=5, n_jobs=1),
                ParametricTSNE(perplexity=5, n_epochs=1, batch_size=30, n_jobs=1)):
        est.fit_transform(X)
        est.transform(X[:3])
    assert torch.get_num_threads() == threads and numba.get_num_threads() == nb
    assert [p["num_threads"] for p in threadpool_info()] == pools
    after = (torch.rand(1).item(), np.random.rand())
    torch.manual_seed(123)
    np.random.seed(123)
    assert after == (torch.rand(1).item(), np.random.rand())


# ---------------------------------------------------------------- bad input
_BAD_INPUT = [
    ({"perplexity": 0}, np.random.rand(20, 3), "perplexity must be a positive"),
    ({"perplexity": -5}, np.random.rand(20, 3), "perplexity must be a positive"),
    ({"n_components": 0}, np.random.rand(20, 3), "n_components"),
    ({"perplexity": 1}, np.random.rand(3, 3), "3 sample.*minimum of 4"),
    ({}, np.random.rand(1, 3), "1 sample"),
    ({}, np.array([[np.nan, 1.0]] * 50), "NaN"),
    ({}, np.array([[np.inf, 1.0]] * 50), "infinity"),
    ({}, np.random.rand(20), "2D array"),
    ({}, np.ones((20, 3), dtype=complex), "Complex data"),
    ({"n_components": 4, "negative_gradient_method": "fft"}, np.random.rand(50, 5), "1-3 components"),
    ({"n_components": 4, "negative_gradient_method": "bh"}, np.random.rand(50, 5), "1-3 components|no Barnes-Hut"),
    ({"learning_rate": -1}, np.random.rand(50, 3), "learning_rate"),
]
_NON_PARAMETRIC_ONLY = ("negative_gradient_method", "learning_rate")  # not ParametricTSNE parameters


def test_more_than_three_components_take_the_exact_sums():
    X, y = blobs(60, 6, 2, seed=9)
    est = TSNE(**FAST, n_components=4, perplexity=10, n_iter=30, early_exaggeration_iter=30).fit(X)
    assert est.method_ == "exact" and est.embedding_.shape == (60, 4) and knn_accuracy(est.embedding_, y, k=5) == 1.0


@pytest.mark.parametrize("cls, kw, X, match", [
    (cls, kw, X, match) for cls in (TSNE, SNE, ParametricTSNE) for kw, X, match in _BAD_INPUT
    if not (cls is ParametricTSNE and any(k in kw for k in _NON_PARAMETRIC_ONLY))
])
def test_bad_input_messages(cls, kw, X, match):
    with pytest.raises(ValueError, match=match):
        cls(**kw).fit(X)


@pytest.mark.parametrize("cls", [TSNE, SNE, ParametricTSNE])
def test_features_at_extreme_scales(cls):
    """X times a power of two gives the same embedding (the input is rescaled exactly); X times
    1e30, 1e-30, 1e300 or 1e-300 gives the same clusters, never an overflow."""
    X, y = blobs(120, 6, 3, seed=10)
    X = X.astype(np.float64)
    kw = dict(FAST, perplexity=10, **(dict(n_epochs=4, batch_size=60) if cls is ParametricTSNE else
                                     dict(n_iter=40, early_exaggeration_iter=40)))
    base = cls(**kw).fit_transform(X)
    for s in (2.0 ** 100, 2.0 ** -100):
        est = cls(**kw)
        assert np.array_equal(est.fit_transform(X * s), base)
        assert np.allclose(est.transform(X[:5] * s), cls(**kw).fit(X).transform(X[:5]))
    for s in (1e30, 1e-30, 1e300, 1e-300):
        Y = cls(**kw).fit_transform(X * s)
        assert np.isfinite(Y).all() and knn_accuracy(Y, y, k=5) == 1.0, s


def test_duplicates_float16_and_wrong_features():
    X, y = blobs(60, 5, 2, seed=5)
    X = np.concatenate([X, X, X[:10]])  # exact duplicates
    Y = TSNE(**FAST, perplexity=10, n_iter=40, early_exaggeration_iter=40).fit_transform(X.astype(np.float16))
    assert Y.shape == (130, 2) and np.isfinite(Y).all()
    same = TSNE(**FAST, perplexity=5, n_iter=20, early_exaggeration_iter=20).fit_transform(np.ones((30, 4)))
    assert np.isfinite(same).all()  # all identical
    est = TSNE(**FAST, perplexity=5, n_iter=1, early_exaggeration_iter=0).fit(X)
    with pytest.raises(ValueError, match="3 features, but TSNE is expecting 5 features"):
        est.transform(np.ones((3, 3)))
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

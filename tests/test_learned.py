"""Learned distributions q(j|i): kernels and cluster likelihoods against their formulas."""
import math

import pytest
import torch

from iconlearn.learned import (
    ClusterLikelihood,
    ConcatSumKernel,
    CosineKernel,
    DotKernel,
    ExponentialKernel,
    GaussianKernel,
    LaplacianKernel,
    StudentTKernel,
    SumKernel,
    cluster_log_q,
    compute_dtype,
    masked_log_softmax,
    sq_distances,
)

DT = torch.float64


def rows_q(logk, exclude_diag=True):
    """Normalise a (B x M) matrix of log-affinities row by row, in a loop."""
    b, m = logk.shape
    out = torch.full((b, m), float("-inf"), dtype=DT)
    for i in range(b):
        cols = [j for j in range(m) if not (exclude_diag and j == i)]
        z = math.log(sum(math.exp(float(logk[i, j])) for j in cols))
        for j in cols:
            out[i, j] = float(logk[i, j]) - z
    return out


def pairwise(x, y, f):
    return torch.tensor([[f(a, b) for b in y] for a in x], dtype=DT)


X = torch.randn(5, 3, dtype=DT, generator=torch.Generator().manual_seed(0))
Y = torch.randn(4, 3, dtype=DT, generator=torch.Generator().manual_seed(1))


def test_sq_distances():
    assert torch.allclose(sq_distances(X, Y), torch.cdist(X, Y) ** 2, atol=1e-12)
    assert float(sq_distances(X, X).diagonal().min()) > 0  # floored: ||.||^gamma keeps finite gradients


@pytest.mark.parametrize("kernel,f", [
    (GaussianKernel(sigma=0.7), lambda a, b: -float(((a - b) ** 2).sum()) / (2 * 0.49)),
    (StudentTKernel(dof=1.0), lambda a, b: -math.log1p(float(((a - b) ** 2).sum()))),
    (StudentTKernel(dof=3.0), lambda a, b: -2.0 * math.log1p(float(((a - b) ** 2).sum()) / 3.0)),
    (CosineKernel(0.3), lambda a, b: float(a @ b) / float(a.norm() * b.norm()) / 0.3),
    (DotKernel(2.0), lambda a, b: float(a @ b) / 2.0),
    (ExponentialKernel(1.5, 0.4), lambda a, b: -float((a / a.norm() - b / b.norm()).norm()) ** 1.5 / 0.4),
    (LaplacianKernel(0.4), lambda a, b: -float((a / a.norm() - b / b.norm()).norm()) / 0.4),
])
def test_kernels_match_formulas(kernel, f):
    assert torch.allclose(kernel(X), rows_q(pairwise(X, X, f), exclude_diag=kernel.exclude_self), atol=1e-10)
    assert torch.allclose(kernel(X, Y), rows_q(pairwise(X, Y, f), exclude_diag=False), atol=1e-10)


def test_mixture_kernels():
    g = ExponentialKernel(2.0, 0.5)
    lap = LaplacianKernel(0.3)
    s = SumKernel([g, lap], [0.2, 0.8])
    ref = pairwise(X, X, lambda a, b: math.log(0.2 * math.exp(-float((a / a.norm() - b / b.norm()).norm()) ** 2 / 0.5)
                                                + 0.8 * math.exp(-float((a / a.norm() - b / b.norm()).norm()) / 0.3)))
    assert torch.allclose(s(X), rows_q(ref), atol=1e-10)
    c = ConcatSumKernel([ExponentialKernel(2.0, 0.5, normalize_inputs=False), ExponentialKernel(1.0, 0.3, normalize_inputs=False)],
                        sizes=[1, 2])
    ref = pairwise(X, X, lambda a, b: math.log(math.exp(-float((a[:1] - b[:1]).norm()) ** 2 / 0.5)
                                                + math.exp(-float((a[1:] - b[1:]).norm()) / 0.3)))
    assert torch.allclose(c(X), rows_q(ref), atol=1e-10)
    with pytest.raises(ValueError, match="add up"):
        ConcatSumKernel([g, lap], sizes=[1, 1])(X)


def test_joint_normalisation():
    k = StudentTKernel()
    J = k.joint(X).view(5, 5).exp()
    assert float(J.sum()) == pytest.approx(1.0) and torch.all(J.diagonal() == 0)
    raw = 1 / (1 + torch.cdist(X, X) ** 2)
    raw.fill_diagonal_(0)
    assert torch.allclose(J, raw / raw.sum(), atol=1e-12)


def test_masked_log_softmax_exclusion_forms():
    logits = torch.randn(3, 4, dtype=DT)
    a = masked_log_softmax(logits, torch.tensor([0, 1, 2]))
    m = torch.zeros(3, 4, dtype=torch.bool)
    m[0, 0] = m[1, 1] = m[2, 2] = True
    assert torch.equal(a, masked_log_softmax(logits, m))
    assert torch.allclose(a.exp().sum(1), torch.ones(3, dtype=DT))


def test_half_inputs_computed_in_float32():
    assert compute_dtype(torch.zeros(1, dtype=torch.float16)) == torch.float32
    assert compute_dtype(torch.zeros(1, dtype=torch.bfloat16), torch.zeros(1, dtype=DT)) == DT
    out = CosineKernel(0.01)(X.half())
    assert out.dtype == torch.float32 and torch.isfinite(out.exp()).all()


def cluster_ref(phi, ref=None, d=None):
    ref = phi if ref is None else ref
    n, m = phi.shape[0], ref.shape[0]
    d = torch.ones(m, dtype=DT) if d is None else d
    q = torch.zeros(n, m, dtype=DT)
    for i in range(n):
        for j in range(m):
            q[i, j] = sum(phi[i, c] * ref[j, c] * d[j] / sum(ref[k, c] * d[k] for k in range(m)) for c in range(phi.shape[1]))
    return q


def test_cluster_likelihood_forms():
    g = torch.Generator().manual_seed(2)
    phi = torch.softmax(torch.randn(6, 3, generator=g, dtype=DT), 1)
    teacher = torch.softmax(torch.randn(6, 3, generator=g, dtype=DT), 1)
    d = torch.rand(6, generator=g, dtype=DT) + 0.5
    assert torch.allclose(cluster_log_q(phi).exp(), cluster_ref(phi), atol=1e-12)
    assert torch.allclose(cluster_log_q(phi, teacher).exp(), cluster_ref(phi, teacher), atol=1e-12)
    assert torch.allclose(cluster_log_q(phi, degrees=d).exp(), cluster_ref(phi, None, d), atol=1e-12)
    ex = cluster_log_q(phi, exclude_self=True).exp()
    ref = cluster_ref(phi)
    ref.fill_diagonal_(0)
    assert torch.allclose(ex, ref / ref.sum(1, keepdim=True), atol=1e-12)
    assert torch.allclose(ClusterLikelihood(exclude_self=True)(phi).exp(), ex)
    assert cluster_log_q(phi.float().half()).dtype == torch.float32


def test_shared_cluster_product_gradient_and_debiased_form():
    """The one-matmul backward of the symmetric cluster product, and q debiased in probability
    space == core.smooth_log_q applied to the generic path."""
    from iconlearn.core import smooth_log_q
    from iconlearn.cluster_likelihood import _SharedClusterProduct

    g = torch.Generator().manual_seed(3)
    phi = torch.softmax(torch.randn(7, 4, generator=g, dtype=DT), 1)
    assert torch.autograd.gradcheck(_SharedClusterProduct.apply, (phi.clone().requires_grad_(),))
    own = torch.arange(7)
    mask = torch.eye(7, dtype=torch.bool)
    for alpha in (0.0, 0.3, 1.0):
        fast = cluster_log_q(phi, exclude=own, alpha=alpha)
        generic = smooth_log_q(cluster_log_q(phi, phi.clone(), exclude=own), alpha, own)  # phi_ref copy: autograd path
        assert torch.allclose(fast.exp(), generic.exp(), atol=1e-14)
        assert torch.allclose(cluster_log_q(phi, exclude=mask, alpha=alpha).exp(), fast.exp(), atol=1e-14)
    x = phi.clone().requires_grad_()
    y = phi.clone().requires_grad_()
    w = torch.randn(7, 7, generator=g, dtype=DT)
    (w * cluster_log_q(x, exclude=own, alpha=0.2).exp()).sum().backward()
    (w * smooth_log_q(cluster_log_q(y, y * 1.0, exclude=own), 0.2, own).exp()).sum().backward()
    assert torch.allclose(x.grad, y.grad, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("alpha_p,alpha_q", [(0.0, 0.0), (0.6, 0.6), (0.3, 0.0), (0.0, 0.8), (0.9, 0.2)])
def test_fused_cluster_cross_entropy_matches_the_formula(seed, alpha_p, alpha_q):
    """cluster_cross_entropy (fused, hand-written backward) == -sum_j p' log q' written densely from
    the formula (shared cluster likelihood, own column excluded, both sides debiased), values and
    gradients, for several heads at once and for one."""
    from iconlearn.losses.fused_clustering import cluster_cross_entropy

    g = torch.Generator().manual_seed(100 + seed)
    H, B, M, C, K = 3, 5, 12, 4, 3
    logits = torch.randn(H, M, C, generator=g, dtype=DT, requires_grad=True)
    own = torch.arange(B)
    idx = torch.stack([torch.randperm(M - 1, generator=g)[:K] for _ in range(B)])
    idx = idx + (idx >= own[:, None]).long()  # never the anchor's own column
    val = torch.rand(B, K, generator=g, dtype=DT)
    val[0, 1] = 0.0  # a padding entry
    val = val / val.sum(1, keepdim=True)

    def reference(phi):  # (M x C) -> (B,)
        s = phi.sum(0)
        q = (phi[:B] / s) @ phi.T
        q = q.masked_fill(torch.eye(B, M, dtype=torch.bool), 0.0)
        q = q / q.sum(1, keepdim=True)
        n = M - 1
        qp = (1 - alpha_q) * q + alpha_q / n
        p = torch.zeros(B, M, dtype=DT).scatter_add(1, idx, val)
        pp = (1 - alpha_p) * p + alpha_p / n
        own_col = torch.eye(B, M, dtype=torch.bool)  # not a candidate: its term is left out of the sum
        return -(torch.where(own_col, 0.0, pp * qp.masked_fill(own_col, 1.0).log())).sum(1)

    phi = logits.softmax(-1)
    ours = cluster_cross_entropy(phi[:, :B], phi, idx, val, own, alpha_p, alpha_q)
    ref = torch.stack([reference(phi[h]) for h in range(H)])
    assert torch.allclose(ours, ref, atol=1e-12)
    w = torch.randn(H, B, generator=g, dtype=DT)
    g_ours, = torch.autograd.grad((w * ours).sum(), logits, retain_graph=True)
    g_ref, = torch.autograd.grad((w * ref).sum(), logits)
    assert torch.allclose(g_ours, g_ref, atol=1e-12)
    one = cluster_cross_entropy(phi[1, :B], phi[1], idx, val, own, alpha_p, alpha_q)
    assert one.shape == (B,) and torch.allclose(one, ref[1], atol=1e-12)

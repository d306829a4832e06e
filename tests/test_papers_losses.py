"""The rows and losses that close the three papers, each against a plain float64 loop
written from its paper's formula on fresh random inputs, with gradchecks: the InfoNCE-clustering and
least-squares rows of I-Con Table 1, Kernel-InfoNCE as its authors trained it (a weighted sum of
losses), HaoChen's spectral contrastive loss, Chuang et al.'s debiased contrastive loss, presets
with another divergence, and the kernel algebra (sum, product, normalise, leak, learnable
Student-t, Minkowski and Poincare distances)."""
import math

import pytest
import torch
import torch.nn.functional as F

from iconlearn import learned as K
from iconlearn.distances import minkowski_distances, poincare_distances, to_poincare_ball
from iconlearn.losses import (
    DebiasedContrastiveLoss,
    InfoNCE,
    InfoNCEClustering,
    KernelInfoNCE,
    MSEICon,
    SpectralContrastiveLoss,
)

from refs import DT, dist, dot, gen, logsumexp, randn, unit


def ref_two_view(rows, logk):
    """mean over the 2N anchors of -log q(partner | i), q(j|i) = k(i, j) / sum_{k != i} k(i, k)."""
    n2 = len(rows)
    total = 0.0
    for i in range(n2):
        pos = (i + n2 // 2) % n2
        total += -logk(rows[i], rows[pos]) + logsumexp([logk(rows[i], rows[k]) for k in range(n2) if k != i])
    return total / n2


def _gradcheck(fn, *inputs):
    inputs = tuple(x.detach().clone().requires_grad_() for x in inputs)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, fast_mode=True)


# --------------------------------------------------------------------------- I-Con Table 1: new rows


def test_infonce_clustering_matches_loop():
    """q(j|i) = phi_i . phi_j / sum_{k != i} phi_i . phi_k (shared cluster likelihood by point)."""
    p1, p2 = torch.softmax(randn(5, 3, seed=1), 1), torch.softmax(randn(5, 3, seed=2), 1)
    rows = torch.cat([p1, p2]).tolist()
    ref = ref_two_view(rows, lambda a, b: math.log(dot(a, b)))
    assert float(InfoNCEClustering()(p1, p2)) == pytest.approx(ref, rel=1e-12)
    _gradcheck(lambda a, b: InfoNCEClustering()(torch.softmax(a, 1), torch.softmax(b, 1)), randn(4, 3, seed=3),
               randn(4, 3, seed=4))
    with pytest.raises(ValueError, match="soft assignments"):
        InfoNCEClustering()(p1 - 0.5, p2)


def test_infonce_clustering_known_value():
    """One-hot assignments of N items, both views in the item's own cluster, clusters of size s:
    q(partner|i) = 1 / (2 s - 1) (the other 2 s - 1 views of the cluster share the mass)."""
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    phi = F.one_hot(labels, 3).to(DT)
    got = float(InfoNCEClustering()(phi, phi))
    sizes = torch.bincount(labels)[labels].to(DT)
    assert got == pytest.approx(float(torch.log(2 * sizes - 1).mean()), rel=1e-12)


def test_mse_icon_is_least_squares():
    f, y = randn(6, 3, seed=5), randn(6, 3, seed=6)
    ref = sum(sum((float(a) - float(b)) ** 2 for a, b in zip(fi, yi)) for fi, yi in zip(f, y)) / 6
    assert float(MSEICon()(f, y)) == pytest.approx(ref, rel=1e-12)
    assert float(MSEICon(sigma=2.0)(f, y)) == pytest.approx(ref / 8, rel=1e-12)
    assert float(MSEICon()(f[:, 0], y[:, 0])) == pytest.approx(float(F.mse_loss(f[:, 0], y[:, 0])), rel=1e-12)
    _gradcheck(lambda a: MSEICon(0.7)(a, y), f)
    with pytest.raises(ValueError, match="same shape"):
        MSEICon()(f, y[:, :2])


# --------------------------------------------------------------------------- Kernel-InfoNCE, both forms


@pytest.mark.parametrize("mixture", ["sum", "concat"])
def test_kernel_infonce_loss_form_matches_weighted_loops(mixture):
    """form='loss': sum_m w_m InfoNCE_m, each with its own softmax (the authors' lambda L_gamma +
    (1 - lambda) L_2); concat: L_m on slice m of the whole L2-normalised embedding."""
    z1, z2 = randn(5, 6, seed=7), randn(5, 6, seed=8)
    rows = [unit(v) for v in torch.cat([z1, z2])]
    g, t, w = (1.0, 2.0), (0.3, 0.6), (0.7, 0.3)
    sl = [slice(0, 3), slice(3, 6)] if mixture == "concat" else [slice(0, 6)] * 2
    ref = sum(wm * ref_two_view(rows, lambda a, b, gm=gm, tm=tm, s=s: -dist(a[s], b[s]) ** gm / tm)
              for gm, tm, wm, s in zip(g, t, w, sl))
    got = KernelInfoNCE(mixture=mixture, gammas=g, temperatures=t, weights=w, form="loss")(z1, z2)
    assert float(got) == pytest.approx(ref, rel=1e-10)
    default = KernelInfoNCE(mixture=mixture, gammas=g, temperatures=t, form="loss")(z1, z2)
    ref_half = sum(0.5 * ref_two_view(rows, lambda a, b, gm=gm, tm=tm, s=s: -dist(a[s], b[s]) ** gm / tm)
                   for gm, tm, s in zip(g, t, sl))
    assert float(default) == pytest.approx(ref_half, rel=1e-10)
    _gradcheck(KernelInfoNCE(mixture=mixture, form="loss"), randn(4, 4, seed=9), randn(4, 4, seed=10))
    # the kernel form is a different loss (one softmax over the mixture)
    assert not torch.allclose(KernelInfoNCE(mixture=mixture, gammas=g, temperatures=t)(z1, z2), got, rtol=1e-3)


def test_kernel_infonce_form_checks():
    with pytest.raises(ValueError, match="form='loss'"):
        KernelInfoNCE(form="loss")
    with pytest.raises(ValueError, match="form must be"):
        KernelInfoNCE(mixture="sum", form="both")


def test_analysis_concat_kernel_is_the_preset_kernel():
    """One concatenation kernel: the spectral analysis' zoo and the preset agree exactly; the old
    zoo kernel (each slice normalised on its own) was another kernel."""
    from iconlearn.analysis.spectral import kernel_zoo

    x, y = randn(7, 4, seed=11), randn(9, 4, seed=12)
    zoo = kernel_zoo(0.5)
    preset = KernelInfoNCE(mixture="concat", temperature=0.5).kernel
    assert torch.equal(zoo["concat (Laplacian, Gaussian)"].log_affinity(x, y), preset.log_affinity(x, y))
    assert torch.equal(zoo["sum: Laplacian + Gaussian"].log_affinity(x, y),
                       KernelInfoNCE(mixture="sum", temperature=0.5).kernel.log_affinity(x, y))
    per_slice = K.ConcatSumKernel([K.ExponentialKernel(1.0, 0.5), K.ExponentialKernel(2.0, 0.5)])
    assert float((per_slice.log_affinity(x, y) - preset.log_affinity(x, y)).abs().max()) > 0.5


# --------------------------------------------------------------------------- losses beside KL


def ref_spectral(z1, z2, mu):
    """HaoChen et al.: -2 mean_i z1_i.z2_i + mean_{i != j} (z1_i.z2_j)^2, rows scaled into the ball
    of radius sqrt(mu), divided by mu."""
    def ball(v):
        n = math.sqrt(sum(a * a for a in v))
        return v if n < math.sqrt(mu) else [a * math.sqrt(mu) / n for a in v]

    a, b = [ball(v) for v in z1.tolist()], [ball(v) for v in z2.tolist()]
    n = len(a)
    attract = -2 * sum(dot(a[i], b[i]) for i in range(n)) / n
    repel = sum(dot(a[i], b[j]) ** 2 for i in range(n) for j in range(n) if j != i) / (n * (n - 1))
    return (attract + repel) / mu


@pytest.mark.parametrize("mu", [1.0, 4.0])
def test_spectral_contrastive_matches_loop(mu):
    z1, z2 = 0.8 * randn(6, 3, seed=13), 0.8 * randn(6, 3, seed=14)  # some rows inside, some outside the ball
    assert float(SpectralContrastiveLoss(mu)(z1, z2)) == pytest.approx(ref_spectral(z1, z2, mu), rel=1e-12)
    _gradcheck(SpectralContrastiveLoss(mu), 0.3 * randn(4, 3, seed=15), 0.3 * randn(4, 3, seed=16))


def ref_dcl(z1, z2, t, tau_plus):
    """Chuang et al. eq. (debiased NT-Xent), loops over the 2N anchors."""
    z = [unit(v) for v in torch.cat([z1, z2])]
    n2 = len(z)
    m = n2 - 2
    total = 0.0
    for i in range(n2):
        pos_j = (i + n2 // 2) % n2
        pos = math.exp(dot(z[i], z[pos_j]) / t)
        neg = sum(math.exp(dot(z[i], z[k]) / t) for k in range(n2) if k not in (i, pos_j))
        ng = max((neg - tau_plus * m * pos) / (1 - tau_plus), m * math.exp(-1 / t))
        total += -math.log(pos / (pos + ng))
    return total / n2


@pytest.mark.parametrize("tau_plus", [0.0, 0.1, 0.5, 0.9])
def test_debiased_contrastive_matches_loop(tau_plus):
    """tau+ = 0.9 drives the estimate below the clamp e^{-1/t}: both branches are checked."""
    z1, z2 = randn(5, 4, seed=17), randn(5, 4, seed=18)
    z2 = z1 + 0.2 * z2  # close positives, so the correction can go below the clamp
    got = DebiasedContrastiveLoss(0.5, tau_plus)(z1, z2)
    assert float(got) == pytest.approx(ref_dcl(z1, z2, 0.5, tau_plus), rel=1e-12)
    if tau_plus == 0.0:
        assert torch.allclose(got, InfoNCE(0.5)(z1, z2), rtol=1e-12)
    _gradcheck(DebiasedContrastiveLoss(0.4, tau_plus), randn(4, 3, seed=19), randn(4, 3, seed=20))


def test_debiased_contrastive_small_temperature_finite():
    z1, z2 = torch.randn(32, 8, generator=gen(21)), torch.randn(32, 8, generator=gen(22))
    for t in (0.01, 0.05):
        a = z1.clone().requires_grad_()
        loss = DebiasedContrastiveLoss(t, 0.1)(a, z2)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(a.grad).all()
    with pytest.raises(ValueError, match="tau_plus"):
        DebiasedContrastiveLoss(0.5, 1.0)


@pytest.mark.parametrize("divergence", ["js", "tv", "hellinger", "l2"])
def test_infonce_with_another_divergence_matches_loop(divergence):
    """p: one-hot on the partner; q: the cosine kernel over the 2N - 1 other views."""
    z1, z2 = randn(4, 3, seed=23), randn(4, 3, seed=24)
    z = [unit(v) for v in torch.cat([z1, z2])]
    n2, tau = len(z), 0.4
    total = 0.0
    for i in range(n2):
        cols = [k for k in range(n2) if k != i]
        lse = logsumexp([dot(z[i], z[k]) / tau for k in cols])
        for k in cols:
            p, q = float(k == (i + n2 // 2) % n2), math.exp(dot(z[i], z[k]) / tau - lse)
            total += {"js": 0.5 * ((p * math.log(2 * p / (p + q)) if p else 0.0) + q * math.log(2 * q / (p + q))),
                      "tv": abs(p - q) / 2, "hellinger": (math.sqrt(p) - math.sqrt(q)) ** 2 / 2,
                      "l2": (p - q) ** 2}[divergence]
    got = InfoNCE(tau, divergence=divergence)(z1, z2)
    assert float(got) == pytest.approx(total / n2, rel=1e-12)
    with pytest.raises(ValueError, match="divergence must be"):
        InfoNCE(divergence="bhattacharyya")


# --------------------------------------------------------------------------- kernel algebra


def test_sum_product_and_weights_match_loops():
    x, y = randn(4, 3, seed=25), randn(5, 3, seed=26)
    lap, gau = K.ExponentialKernel(1.0, 0.5), K.ExponentialKernel(2.0, 0.8)
    xs, ys = [unit(v) for v in x], [unit(v) for v in y]

    def k1(a, b):
        return math.exp(-dist(a, b) / 0.5)

    def k2(a, b):
        return math.exp(-dist(a, b) ** 2 / 0.8)

    cases = {"sum": (lap + 3.0 * gau, lambda a, b: k1(a, b) + 3 * k2(a, b)),
             "product": (lap * gau, lambda a, b: k1(a, b) * k2(a, b))}
    for name, (kern, ref) in cases.items():
        got = kern(x, y).exp()
        for i in range(4):
            row = [ref(xs[i], ys[j]) for j in range(5)]
            for j in range(5):
                assert float(got[i, j]) == pytest.approx(row[j] / sum(row), rel=1e-12), name
    # a + b + c flattens into one sum
    assert len((lap + gau + lap).kernels) == 3


def test_normalize_and_leak_match_loops():
    """normalize(): the components' q are mixed (not their affinities); leak: (1 - a) q + a / N_i
    over the candidates; both respect the excluded anchor column."""
    x = randn(5, 3, seed=27)
    lap, gau = K.ExponentialKernel(1.0, 0.5), K.ExponentialKernel(2.0, 0.3)
    q1, q2 = lap(x).exp(), gau(x).exp()
    mix = (lap.normalize() + gau.normalize())(x).exp()
    assert torch.allclose(mix, (q1 + q2) / 2, atol=1e-14)
    assert torch.allclose(lap.normalize()(x).exp(), q1, atol=1e-14)
    leaked = lap.leak(0.3)(x).exp()
    n = 4  # candidates per row
    expect = 0.7 * q1 + 0.3 / n
    expect.fill_diagonal_(0.0)
    assert torch.allclose(leaked, expect, atol=1e-14)
    _gradcheck(lambda a: (lap.leak(0.2) + gau.normalize())(a).logsumexp(1).sum() + (lap * gau)(a)[0, 1], x)
    with pytest.raises(ValueError, match="alpha"):
        lap.leak(1.5)


def test_student_t_learnable_scale_and_dof():
    """(1 + d^2 / (nu s^2))^(-(nu + 1) / 2); at nu = s = 1 it is StudentTKernel; its parameters get
    gradients through a loss that holds it."""
    x = randn(5, 2, seed=28)
    kern = K.LearnableStudentTKernel(dof=2.5, scale=0.7)
    nu, s = 2.5, 0.7
    got = kern(x).exp().detach()
    for i in range(5):
        row = [(1 + dist(x[i], x[j]) ** 2 / (nu * s * s)) ** (-(nu + 1) / 2) if j != i else 0.0 for j in range(5)]
        for j in range(5):
            assert float(got[i, j]) == pytest.approx(row[j] / sum(row), rel=1e-6, abs=1e-12)  # float32 parameters
    assert torch.allclose(K.LearnableStudentTKernel()(x), K.StudentTKernel(1.0)(x), atol=1e-12)
    loss = InfoNCE(kernel=kern)
    assert {n for n, _ in loss.named_parameters()} == {"kernel.log_dof", "kernel.log_scale"}
    loss(x, x + 0.1).backward()
    assert kern.log_dof.grad is not None and kern.log_scale.grad is not None
    frozen = K.LearnableStudentTKernel(learn_dof=False)
    assert [n for n, p in frozen.named_parameters() if p.requires_grad] == ["log_scale"]
    d = K.LearnableStudentTKernel(dof=1.0, scale=1.0).double()
    _gradcheck(lambda a: d(a).logsumexp(1).sum(), x)


@pytest.mark.parametrize("p", [1.0, 1.5, 3.0])
def test_minkowski_kernel_matches_loop(p):
    x, y = randn(4, 3, seed=29), randn(3, 3, seed=30)
    got = minkowski_distances(x, y, p)
    for i in range(4):
        for j in range(3):
            assert float(got[i, j]) == pytest.approx(dist(x[i], y[j], p), rel=1e-12)
    kern = K.ExponentialKernel(1.0, 0.5, normalize_inputs=False, metric="minkowski", p=p)
    assert torch.allclose(kern.log_affinity(x, y), -got / 0.5)
    manhattan = K.ExponentialKernel(0.5, 0.5, normalize_inputs=False, metric="manhattan")
    assert torch.allclose(manhattan.log_affinity(x, y), -minkowski_distances(x, y, 1.0).sqrt() / 0.5)
    with pytest.raises(ValueError, match="p must be >= 1"):
        minkowski_distances(x, y, 0.5)


def test_poincare_distance_and_kernels():
    v, w = randn(4, 2, seed=31), randn(3, 2, seed=32)
    x, y = to_poincare_ball(v), to_poincare_ball(w)
    assert bool((x.norm(dim=1) < 1).all())
    got = poincare_distances(x, y)
    for i in range(4):
        for j in range(3):
            a, b = x[i].tolist(), y[j].tolist()
            na, nb = dot(a, a), dot(b, b)
            ref = math.acosh(1 + 2 * dist(a, b) ** 2 / ((1 - na) * (1 - nb)))
            assert float(got[i, j]) == pytest.approx(ref, rel=1e-10)
    kern = K.StudentTKernel(metric="poincare")
    assert torch.allclose(kern.log_affinity(v, w), -torch.log1p(got**2))
    _gradcheck(lambda a: K.ExponentialKernel(1.0, 0.5, normalize_inputs=False, metric="poincare")(a).logsumexp(1).sum(), v)
    with pytest.raises(ValueError, match="inside the unit ball"):
        poincare_distances(v * 10, w)
    with pytest.raises(ValueError, match="normalize_inputs=False"):
        K.ExponentialKernel(metric="poincare")
    with pytest.raises(ValueError, match="metric must be"):
        K.ExponentialKernel(metric="cosine")

"""Every preset against a plain float64 loop written from its paper's formula, gradchecks, known
values, and the identities of I-Con (Theorems 3, 5, 6, 8, Corollary 2) and Calder-Lee (eq. 1 = 4-5)."""
import math

import pytest
import torch
import torch.nn.functional as F

from iconlearn.losses import (
    CLIPLoss,
    CrossEntropyICon,
    DebiasedContrastiveLoss,
    GeneralizedNTXent,
    IConClusteringLoss,
    InfoNCE,
    KernelInfoNCE,
    KMeansICon,
    MIClustering,
    NormalizedCutsICon,
    SNELoss,
    SpectralContrastiveLoss,
    SupCon,
    TSNELoss,
)

from refs import DT, dist, dot, gen, logsumexp, randn, unit


# --------------------------------------------------------------------------- references (loops)


def ref_ntxent(z1, z2, tau):
    """SimCLR NT-Xent (Chen et al. 2020): 2N anchors, positive = other view, all k != i in the denominator."""
    z = [unit(v) for v in torch.cat([z1, z2])]
    n2, n = len(z), z1.shape[0]
    total = 0.0
    for i in range(n2):
        pos = (i + n) % n2
        s = [dot(z[i], z[k]) / tau for k in range(n2) if k != i]
        total += -dot(z[i], z[pos]) / tau + logsumexp(s)
    return total / n2


def ref_kernel_infonce(z1, z2, logk):
    z = [unit(v) for v in torch.cat([z1, z2])]
    n2, n = len(z), z1.shape[0]
    total = 0.0
    for i in range(n2):
        pos = (i + n) % n2
        total += -logk(z[i], z[pos]) + logsumexp([logk(z[i], z[k]) for k in range(n2) if k != i])
    return total / n2


def ref_supcon(z, labels, tau):
    """Khosla et al. L_out: -1/|P(i)| sum_p log exp(s_ip) / sum_{a != i} exp(s_ia)."""
    z = [unit(v) for v in z]
    labels = [int(v) for v in labels]
    total, count = 0.0, 0
    for i in range(len(z)):
        P = [p for p in range(len(z)) if p != i and labels[p] == labels[i]]
        if not P:
            continue
        lse = logsumexp([dot(z[i], z[a]) / tau for a in range(len(z)) if a != i])
        total += -sum(dot(z[i], z[p]) / tau - lse for p in P) / len(P)
        count += 1
    return total / count


def ref_clip(a, b, tau):
    a, b = [unit(v) for v in a], [unit(v) for v in b]
    n = len(a)
    ab = sum(-dot(a[i], b[i]) / tau + logsumexp([dot(a[i], b[k]) / tau for k in range(n)]) for i in range(n)) / n
    ba = sum(-dot(b[i], a[i]) / tau + logsumexp([dot(b[i], a[k]) / tau for k in range(n)]) for i in range(n)) / n
    return (ab + ba) / 2


def ref_eq1(z1, z2, tau, expectation="mean", negatives="both_views", symmetric=True):
    """Calder & Lee eq. 1 (both_views) / eq. 4 with Psi = log(1 + t), eta = exp(-t / tau) (cross_view)."""
    n = z1.shape[0]
    views = [[unit(v) for v in z1], [unit(v) for v in z2]]
    norm = 1.0 / n if expectation == "mean" else 1.0
    terms = []
    for a_view in ([0, 1] if symmetric else [0]):
        T, Tp = views[a_view], views[1 - a_view]
        for x in range(n):
            if negatives == "both_views":  # sum over h in {T, T'}, y != x, of exp(sim / tau)
                s = sum(math.exp(dot(T[x], h[y]) / tau) for h in (T, Tp) for y in range(n) if y != x)
                ratio = norm * s / math.exp(dot(T[x], Tp[x]) / tau)
            else:  # E_y eta(||T(x) - T'(y)||^2 / 2) / eta(||T(x) - T'(x)||^2 / 2)
                s = sum(math.exp(-dist(T[x], Tp[y]) ** 2 / 2 / tau) for y in range(n))
                ratio = norm * s / math.exp(-dist(T[x], Tp[x]) ** 2 / 2 / tau)
            terms.append(math.log(1 + ratio))
    return sum(terms) / len(terms)


def ref_calibrated_p(X, perplexity):
    """Per-row scalar bisection on beta = 1 / 2 sigma_i^2 until exp(H(p_i)) = perplexity (loops)."""
    n = X.shape[0]
    P = [[0.0] * n for _ in range(n)]
    for i in range(n):
        d = [dist(X[i], X[j]) ** 2 for j in range(n)]
        lo, hi = 0.0, 1e6
        for _ in range(200):
            beta = (lo + hi) / 2
            w = [math.exp(-beta * (d[j] - min(d[k] for k in range(n) if k != i))) if j != i else 0.0 for j in range(n)]
            s = sum(w)
            p = [v / s for v in w]
            H = -sum(v * math.log(v) for v in p if v > 0)
            if H > math.log(perplexity):
                lo = beta
            else:
                hi = beta
        P[i] = p
    return P


def ref_kl_rows(P, logq_fn, n):
    return sum(sum(P[i][j] * (math.log(P[i][j]) - logq_fn(i, j)) for j in range(n) if P[i][j] > 0) for i in range(n)) / n


def cluster_q(phi, i, j, degrees=None, exclude_self=False):
    n, m = phi.shape
    d = [1.0] * n if degrees is None else [float(v) for v in degrees]

    def raw(a, b):
        return sum(float(phi[a, c]) * float(phi[b, c]) * d[b] / sum(float(phi[k, c]) * d[k] for k in range(n))
                   for c in range(m))

    if not exclude_self:
        return raw(i, j)
    if j == i:
        return 0.0
    return raw(i, j) / sum(raw(i, k) for k in range(n) if k != i)


def entropy(row):
    return -sum(v * math.log(v) for v in row if v > 0)


# --------------------------------------------------------------------------- presets vs references


@pytest.mark.parametrize("tau", [0.1, 0.5, 2.0])
def test_infonce_matches_ntxent_loop(tau):
    z1, z2 = randn(5, 3, seed=1), randn(5, 3, seed=2)
    assert float(InfoNCE(tau)(z1, z2)) == pytest.approx(ref_ntxent(z1, z2, tau), rel=1e-10)


def test_infonce_matches_cross_entropy_implementation():
    """InfoNCE as I-Con (Theorem 3) == the usual logits + F.cross_entropy implementation."""
    z1, z2 = randn(16, 8, seed=3), randn(16, 8, seed=4)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / 0.3).fill_diagonal_(float("-inf"))
    target = torch.arange(32).roll(16)
    assert torch.allclose(InfoNCE(0.3)(z1, z2), F.cross_entropy(logits, target), rtol=1e-12)


def test_infonce_known_value_orthogonal_identical_views():
    """z1 = z2 = N orthonormal vectors: each anchor has cos 1 with its positive and 0 with the
    2N - 2 others, so the loss is log(1 + (2N - 2) e^{-1/tau})."""
    n, tau = 4, 0.5
    e = torch.eye(n, dtype=DT)
    assert float(InfoNCE(tau)(e, e)) == pytest.approx(math.log(1 + (2 * n - 2) * math.exp(-1 / tau)), rel=1e-12)
    assert float(CLIPLoss(tau)(e, e)) == pytest.approx(math.log(1 + (n - 1) * math.exp(-1 / tau)), rel=1e-12)


@pytest.mark.parametrize("tau", [0.07, 0.5])
def test_supcon_matches_loop(tau):
    z, labels = randn(9, 4, seed=5), torch.tensor([0, 1, 0, 2, 1, 1, 3, 0, 2])  # label 3 has no positive
    assert float(SupCon(tau)(z, labels)) == pytest.approx(ref_supcon(z, labels, tau), rel=1e-10)


def test_supcon_views_layout_and_no_positive():
    z, labels = randn(4, 2, 3, seed=6), torch.tensor([0, 1, 0, 2])
    flat = torch.cat([z[:, 0], z[:, 1]])
    assert float(SupCon(0.2)(z, labels)) == pytest.approx(ref_supcon(flat, labels.repeat(2), 0.2), rel=1e-10)
    x = randn(3, 4, seed=7).requires_grad_()
    loss = SupCon()(x, torch.tensor([0, 1, 2]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(x.grad, torch.zeros_like(x))


def test_supcon_reduces_to_infonce_with_item_labels():
    z1, z2 = randn(6, 4, seed=8), randn(6, 4, seed=9)
    items = torch.arange(6).repeat(2)
    assert torch.allclose(SupCon(0.4)(torch.cat([z1, z2]), items), InfoNCE(0.4)(z1, z2), rtol=1e-12)


@pytest.mark.parametrize("tau", [0.07, 1.0])
def test_clip_matches_loop(tau):
    a, b = randn(5, 4, seed=10), randn(5, 4, seed=11)
    assert float(CLIPLoss(tau)(a, b)) == pytest.approx(ref_clip(a, b, tau), rel=1e-10)


def test_cross_entropy_icon_matches_torch():
    feats, protos, y = randn(7, 3, seed=12), randn(4, 3, seed=13), torch.tensor([0, 3, 1, 2, 2, 0, 1])
    assert torch.allclose(CrossEntropyICon(0.5)(feats, protos, y), F.cross_entropy(feats @ protos.T / 0.5, y), rtol=1e-12)
    logits = randn(7, 4, seed=14)
    assert torch.allclose(CrossEntropyICon()(logits, None, y), F.cross_entropy(logits, y), rtol=1e-12)
    ref = sum(-float(logits[i, y[i]]) + logsumexp([float(v) for v in logits[i]]) for i in range(7)) / 7
    assert float(CrossEntropyICon()(logits, None, y)) == pytest.approx(ref, rel=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 2.0])
def test_kernel_infonce_single_kernel(gamma):
    z1, z2 = randn(5, 4, seed=15), randn(5, 4, seed=16)
    tau = 0.4
    ref = ref_kernel_infonce(z1, z2, lambda a, b: -dist(a, b) ** gamma / tau)
    assert float(KernelInfoNCE(gamma=gamma, temperature=tau)(z1, z2)) == pytest.approx(ref, rel=1e-9)


def test_kernel_infonce_gaussian_equals_infonce_at_half_temperature():
    """On the sphere exp(-||x - y||^2 / tau) = e^{-2/tau} exp(2 cos / tau): InfoNCE at tau / 2."""
    z1, z2 = randn(6, 5, seed=17), randn(6, 5, seed=18)
    assert torch.allclose(KernelInfoNCE(gamma=2.0, temperature=0.6)(z1, z2), InfoNCE(0.3)(z1, z2), rtol=1e-10)


def test_kernel_infonce_mixtures():
    z1, z2 = randn(5, 6, seed=19), randn(5, 6, seed=20)
    g, t, w = (1.0, 2.0), (0.3, 0.7), (0.25, 0.75)
    ref = ref_kernel_infonce(z1, z2, lambda a, b: math.log(sum(wi * math.exp(-dist(a, b) ** gi / ti)
                                                               for gi, ti, wi in zip(g, t, w))))
    got = KernelInfoNCE(mixture="sum", gammas=g, temperatures=t, weights=w)(z1, z2)
    assert float(got) == pytest.approx(ref, rel=1e-9)
    sizes = (2, 4)
    ref = ref_kernel_infonce(z1, z2, lambda a, b: math.log(
        math.exp(-dist(a[:2], b[:2]) ** g[0] / t[0]) + math.exp(-dist(a[2:], b[2:]) ** g[1] / t[1])))
    got = KernelInfoNCE(mixture="concat", gammas=g, temperatures=t, sizes=sizes)(z1, z2)
    assert float(got) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("tau", [0.2, 1.0])
def test_generalized_ntxent_default_is_eq1(tau):
    z1, z2 = randn(5, 3, seed=21), randn(5, 3, seed=22)
    assert float(GeneralizedNTXent(temperature=tau)(z1, z2)) == pytest.approx(ref_eq1(z1, z2, tau), rel=1e-10)
    got = GeneralizedNTXent(temperature=tau, symmetric=False)(z1, z2)
    assert float(got) == pytest.approx(ref_eq1(z1, z2, tau, symmetric=False), rel=1e-10)


def test_generalized_ntxent_sum_is_simclr_infonce():
    z1, z2 = randn(7, 4, seed=23), randn(7, 4, seed=24)
    assert torch.allclose(GeneralizedNTXent(temperature=0.3, expectation="sum")(z1, z2), InfoNCE(0.3)(z1, z2), rtol=1e-10)
    # and the default (batch mean, eq. 1 as written) differs from it by the 1/N inside the log
    assert not torch.allclose(GeneralizedNTXent(temperature=0.3)(z1, z2), InfoNCE(0.3)(z1, z2), rtol=1e-3)


def test_generalized_ntxent_eq4_cross_view_and_custom_functions():
    z1, z2 = randn(5, 3, seed=25), randn(5, 3, seed=26)
    got = GeneralizedNTXent(temperature=0.5, negatives="cross_view")(z1, z2)
    assert float(got) == pytest.approx(ref_eq1(z1, z2, 0.5, negatives="cross_view"), rel=1e-10)
    # custom callables reproduce the defaults
    custom = GeneralizedNTXent(psi=torch.log1p, eta=lambda t: torch.exp(-t / 0.5), temperature=0.5)
    assert torch.allclose(custom(z1, z2), GeneralizedNTXent(temperature=0.5)(z1, z2), rtol=1e-10)
    ident = GeneralizedNTXent(psi="identity", temperature=0.5)(z1, z2)
    assert torch.isfinite(ident) and float(ident) > 0


def test_sne_conditional_matches_loop():
    X, Y = randn(8, 5, seed=27), randn(8, 2, seed=28)
    perp = 3.0
    P = ref_calibrated_p(X, perp)
    n = 8

    def logq(i, j):
        return -dist(Y[i], Y[j]) ** 2 - logsumexp([-dist(Y[i], Y[k]) ** 2 for k in range(n) if k != i])

    assert float(SNELoss(perplexity=perp)(Y, X)) == pytest.approx(ref_kl_rows(P, logq, n), rel=2e-5)


def test_tsne_joint_and_conditional_match_loops():
    X, Y = randn(7, 4, seed=29), randn(7, 2, seed=30)
    perp, n, dof = 2.5, 7, 1.0
    P = ref_calibrated_p(X, perp)
    logk = [[-(dof + 1) / 2 * math.log1p(dist(Y[i], Y[j]) ** 2 / dof) for j in range(n)] for i in range(n)]

    def logq(i, j):
        return logk[i][j] - logsumexp([logk[i][k] for k in range(n) if k != i])

    cond = TSNELoss(perplexity=perp, normalization="conditional")(Y, X)
    assert float(cond) == pytest.approx(ref_kl_rows(P, logq, n), rel=2e-5)
    # joint: P_ij = (p_j|i + p_i|j) / 2N, Q_ij = k_ij / sum_{k != l} k_kl
    logZ = logsumexp([logk[i][j] for i in range(n) for j in range(n) if i != j])
    ref = sum(((P[i][j] + P[j][i]) / (2 * n)) * (math.log((P[i][j] + P[j][i]) / (2 * n)) - (logk[i][j] - logZ))
              for i in range(n) for j in range(n) if i != j)
    assert float(TSNELoss(perplexity=perp)(Y, X)) == pytest.approx(ref, rel=2e-5)


def test_tsne_sparse_p_equals_dense_p():
    from iconlearn.supervisory import gaussian_targets
    from iconlearn.learned import sq_distances
    X, Y = randn(10, 3, seed=31), randn(10, 2, seed=32)
    d = sq_distances(X, X)
    P = gaussian_targets(d, perplexity=3.0)
    k = 9  # all other points as "neighbours": the sparse path must agree exactly
    order = torch.argsort(d.fill_diagonal_(float("inf")), 1)[:, :k]
    sparse = gaussian_targets(d.gather(1, order), order, perplexity=3.0)
    for norm in ("conditional", "joint"):
        loss = TSNELoss(normalization=norm)
        assert torch.allclose(loss(Y, p=sparse), loss(Y, p=P), rtol=1e-8)
    assert torch.allclose(SNELoss(3.0)(Y, X), SNELoss()(Y, p=P), rtol=1e-8)


def test_kmeans_icon_matches_loop():
    X, phi = randn(6, 3, seed=33), torch.softmax(randn(6, 3, seed=34), 1)
    sigma, n = 0.8, 6

    def logp(i, j):
        return -dist(X[i], X[j]) ** 2 / (2 * sigma**2) - logsumexp([-dist(X[i], X[k]) ** 2 / (2 * sigma**2) for k in range(n)])

    ref = sum(sum(cluster_q(phi, i, j) * (math.log(cluster_q(phi, i, j)) - logp(i, j)) for j in range(n)) for i in range(n)) / n
    assert float(KMeansICon(sigma)(phi, X)) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("direction", ["reverse", "forward"])
def test_normalized_cuts_matches_loop(direction):
    n = 6
    W = torch.rand(n, n, generator=gen(35), dtype=DT)
    W = (W + W.T) / 2
    W.fill_diagonal_(0)
    phi = torch.softmax(randn(n, 3, seed=36), 1)
    d = W.sum(1)
    if direction == "reverse":
        def logp(i, j):
            return float(W[i, j] / d[j]) - logsumexp([float(W[i, k] / d[k]) for k in range(n)])
        ref = sum(sum(cluster_q(phi, i, j, d) * (math.log(cluster_q(phi, i, j, d)) - logp(i, j)) for j in range(n))
                  for i in range(n)) / n
    else:
        ref = sum(sum(float(W[i, j] / d[i]) * math.log(float(W[i, j] / d[i]) / cluster_q(phi, i, j, d))
                      for j in range(n) if W[i, j] > 0) for i in range(n)) / n
    assert float(NormalizedCutsICon(direction)(phi, W)) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("alpha_p,alpha_q", [(0.0, 0.0), (0.2, 0.0), (0.0, 0.3), (0.2, 0.4), (1.0, 1.0)])
def test_icon_clustering_matches_debiased_loop(alpha_p, alpha_q):
    n = 8
    phi = torch.softmax(randn(n, 4, seed=37), 1)
    groups = torch.tensor([0, 1, 0, 2, 1, 3, 0, 2])  # group 3 is alone: left out
    rows = []
    for i in range(n):
        pos = [j for j in range(n) if j != i and groups[j] == groups[i]]
        if not pos:
            continue
        kl = 0.0
        for j in range(n):
            if j == i:
                continue
            p = (1 - alpha_p) * (1 / len(pos) if j in pos else 0.0) + alpha_p / (n - 1)
            q = (1 - alpha_q) * cluster_q(phi, i, j, exclude_self=True) + alpha_q / (n - 1)
            if p > 0:
                kl += p * math.log(p / q)
        rows.append(kl)
    ref = sum(rows) / len(rows)
    got = IConClusteringLoss(alpha_p, alpha_q)(phi, groups)
    assert float(got) == pytest.approx(ref, rel=1e-10, abs=1e-12)
    if alpha_p == alpha_q == 0:
        assert torch.allclose(MIClustering()(phi, groups), got)
    import iconlearn.losses

    assert not hasattr(iconlearn.losses, "IConClustering")  # the estimator is iconlearn.IConClustering


def test_icon_clustering_sparse_target_and_teacher():
    from iconlearn.core import SparseRows
    n = 6
    phi = torch.softmax(randn(n, 3, seed=38), 1)
    teacher = torch.softmax(randn(n, 3, seed=39), 1)
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    dense = torch.zeros(n, n, dtype=DT)
    for i in range(n):
        dense[i, i ^ 1] = 1.0
    sp = SparseRows(torch.ones(n, 1, dtype=DT), torch.tensor([[i ^ 1] for i in range(n)]))
    loss = IConClusteringLoss(0.1, 0.2)
    a, b, c = loss(phi, groups), loss(phi, target=dense), loss(phi, target=sp)
    assert torch.allclose(a, b) and torch.allclose(a, c)
    assert not torch.allclose(loss(phi, groups, probs_ref=teacher), a)
    # probs_ref with more rows: the anchors first, then extra candidate columns
    extra = torch.softmax(randn(3, 3, seed=60), 1)
    ref = torch.cat([phi, extra])
    padded = torch.cat([dense, torch.zeros(n, 3, dtype=DT)], 1)
    assert torch.allclose(loss(phi, groups, probs_ref=ref), loss(phi, target=padded, probs_ref=ref))


# --------------------------------------------------------------------------- identities


def _prob_kmeans(X, phi):
    """L_ProbKMeans = sum_ic phi_ic ||x_i - mu_c||^2 with mu_c the phi-weighted means."""
    mu = (phi.T @ X) / phi.sum(0)[:, None]
    return float((phi * torch.cdist(X, mu) ** 2).sum())


def test_theorem5_and_corollary2():
    X, phi = randn(9, 3, seed=40), torch.softmax(2 * randn(9, 4, seed=41), 1)
    from iconlearn.learned import cluster_log_q
    q = cluster_log_q(phi).exp()
    thm5 = -float(((X @ X.T) * q).sum())
    # Theorem 5: L_ProbKMeans(mu*) = sum ||x||^2 + L  (so both have the same minimisers)
    assert _prob_kmeans(X, phi) == pytest.approx(float((X * X).sum()) + thm5, rel=1e-10)
    # Corollary 2, with the sign and the factor that hold: sum_ij ||x_i - x_j||^2 q(j|i) = 2 L_ProbKMeans
    d2 = torch.cdist(X, X) ** 2
    assert float((d2 * q).sum()) == pytest.approx(2 * _prob_kmeans(X, phi), rel=1e-10)
    # hard assignments: L_ProbKMeans is the k-means objective with centres at the cluster means
    hard = F.one_hot(torch.tensor([0, 1, 2, 3, 0, 1, 2, 3, 0]), 4).to(DT)
    km = sum(float(((X[hard[:, c] > 0] - X[hard[:, c] > 0].mean(0)) ** 2).sum()) for c in range(4))
    assert _prob_kmeans(X, hard) == pytest.approx(km, rel=1e-10)


@pytest.mark.parametrize("sigma", [0.7, 1.5])
def test_theorem6_c_sne_identity(sigma):
    X = randn(8, 3, seed=42)
    n = 8
    d2 = torch.cdist(X, X) ** 2
    logZ = torch.logsumexp(-d2 / (2 * sigma**2), 1)
    consts = []
    for seed in (43, 44, 45):
        phi = torch.softmax(2 * randn(n, 3, seed=seed), 1)
        from iconlearn.learned import cluster_log_q
        q = cluster_log_q(phi).exp()
        H = -torch.special.xlogy(q, q).sum(1)
        c_sne = float(KMeansICon(sigma)(phi, X)) * n  # the loss is a mean over rows
        exact = float((d2 * q).sum()) / (2 * sigma**2) - float(H.sum()) + float(logZ.sum())
        assert c_sne == pytest.approx(exact, rel=1e-10)
        consts.append(c_sne - _prob_kmeans(X, phi) / sigma**2 + float(H.sum()))
        paper = c_sne - _prob_kmeans(X, phi) / (2 * sigma**2) + float(H.sum())
        consts.append(paper)
    # with 1/sigma^2 the remainder is the same constant (sum_i log Z_i) for every phi ...
    ours = consts[0::2]
    assert max(ours) - min(ours) < 1e-9 and ours[0] == pytest.approx(float(logZ.sum()), rel=1e-10)
    # ... with the stated 1/(2 sigma^2) it is not: the paper's factor is off by 2
    paper = consts[1::2]
    assert max(paper) - min(paper) > 1e-3


def test_theorem8_normalized_cuts_identity():
    n, m = 7, 3
    W = torch.rand(n, n, generator=gen(46), dtype=DT)
    W = (W + W.T) / 2
    W.fill_diagonal_(0)
    d = W.sum(1)
    logZ = torch.logsumexp(W / d[None, :], 1)
    for seed in (47, 48):
        phi = torch.softmax(2 * randn(n, m, seed=seed), 1)
        vol = (phi * d[:, None]).sum(0)
        cut = torch.stack([(W * phi[:, c][:, None] * (1 - phi[:, c])[None, :]).sum() for c in range(m)])
        ncut = float((cut / vol).sum())
        from iconlearn.learned import cluster_log_q
        q = cluster_log_q(phi, degrees=d).exp()
        H = float(-torch.special.xlogy(q, q).sum())
        loss = float(NormalizedCutsICon()(phi, W)) * n
        assert loss == pytest.approx(ncut - H + float(logZ.sum()) - m, rel=1e-10)


def test_cluster_likelihood_known_value():
    """One-hot assignments: q(j|i) = 1 / |cluster(i)| inside the cluster, 0 outside (Definition 2)."""
    from iconlearn.learned import cluster_log_q
    phi = F.one_hot(torch.tensor([0, 0, 1, 0, 1]), 2).to(DT)
    q = cluster_log_q(phi).exp()
    expected = torch.tensor([[1 / 3, 1 / 3, 0, 1 / 3, 0], [1 / 3, 1 / 3, 0, 1 / 3, 0], [0, 0, 0.5, 0, 0.5],
                             [1 / 3, 1 / 3, 0, 1 / 3, 0], [0, 0, 0.5, 0, 0.5]], dtype=DT)
    assert torch.allclose(q, expected, atol=1e-12)


# --------------------------------------------------------------------------- gradients and precision


def _gradcheck(fn, *inputs):
    inputs = tuple(x.detach().clone().requires_grad_() for x in inputs)
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, fast_mode=True)


def test_gradcheck_contrastive():
    z1, z2 = randn(4, 3, seed=50), randn(4, 3, seed=51)
    _gradcheck(InfoNCE(0.3), z1, z2)
    _gradcheck(KernelInfoNCE(gamma=1.0, temperature=0.5), z1, z2)
    _gradcheck(KernelInfoNCE(mixture="sum", temperatures=(0.4, 0.8)), z1, z2)
    _gradcheck(KernelInfoNCE(mixture="concat", sizes=(1, 2)), z1, z2)
    _gradcheck(GeneralizedNTXent(temperature=0.3), z1, z2)
    _gradcheck(GeneralizedNTXent(temperature=0.3, negatives="cross_view", eta=lambda t: 1 / (1 + t)), z1, z2)
    _gradcheck(CLIPLoss(0.2), z1, z2)
    labels = torch.tensor([0, 1, 0, 1, 2, 2, 0, 1])
    _gradcheck(lambda z: SupCon(0.3)(z, labels), torch.cat([z1, z2]))
    _gradcheck(lambda f, p: CrossEntropyICon(0.7)(f, p, torch.tensor([0, 1, 2, 1])), z1, z2[:3])


def test_gradcheck_neighbour_embedding_and_clustering():
    X, Y = randn(6, 4, seed=52), randn(6, 2, seed=53)
    P = SNELoss(2.0).targets(X, X, torch.arange(6))  # calibrate once, not at every gradcheck probe
    _gradcheck(lambda y: SNELoss(2.0)(y, p=P), Y)
    _gradcheck(lambda y: TSNELoss(2.0)(y, p=P), Y)
    _gradcheck(lambda y: TSNELoss(2.0, dof=2.5, normalization="conditional")(y, p=P), Y)
    logits = randn(6, 3, seed=54)
    groups = torch.tensor([0, 0, 1, 1, 2, 2])
    _gradcheck(lambda l: IConClusteringLoss(0.2, 0.3)(torch.softmax(l, 1), groups), logits)
    _gradcheck(lambda l: KMeansICon(1.0)(torch.softmax(l, 1), X), logits)
    W = torch.rand(6, 6, generator=gen(55), dtype=DT)
    W = (W + W.T).fill_diagonal_(0)
    _gradcheck(lambda l: NormalizedCutsICon()(torch.softmax(l, 1), W), logits)
    _gradcheck(lambda l: NormalizedCutsICon("forward")(torch.softmax(l, 1), W), logits)


HALF_CASES = {
    "InfoNCE": lambda t: (InfoNCE(t), 2),
    "KernelInfoNCE": lambda t: (KernelInfoNCE(gamma=1.0, temperature=t), 2),
    "KernelInfoNCE-concat": lambda t: (KernelInfoNCE(mixture="concat", temperature=t), 2),
    "GeneralizedNTXent": lambda t: (GeneralizedNTXent(temperature=t), 2),
    "CLIPLoss": lambda t: (CLIPLoss(t), 2),
    "SupCon": lambda t: (SupCon(t), "labels"),
    "CrossEntropyICon": lambda t: (CrossEntropyICon(t), "ce"),
    "DebiasedContrastiveLoss": lambda t: (DebiasedContrastiveLoss(t, 0.1), 2),
    "SpectralContrastiveLoss": lambda t: (SpectralContrastiveLoss(t), 2),
    "KernelInfoNCE-loss-form": lambda t: (KernelInfoNCE(mixture="concat", form="loss", temperature=t), 2),
}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", sorted(HALF_CASES))
def test_half_precision_finite(name, dtype):
    """Half inputs: values and gradients finite for temperatures 0.01 .. 10 (computed in float32),
    and close to the float32 loss on the same (rounded) inputs."""
    for t in (0.01, 0.1, 1.0, 10.0):
        loss_fn, kind = HALF_CASES[name](t)
        z1 = torch.randn(32, 16, generator=gen(56)).to(dtype).requires_grad_()
        z2 = torch.randn(32, 16, generator=gen(57)).to(dtype).requires_grad_()
        if kind == 2:
            args = (z1, z2)
        elif kind == "labels":
            args = (z1, torch.arange(32) % 5)
        else:
            args = (z1, z2[:10], torch.arange(32) % 10)
        loss = loss_fn(*args)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(z1.grad.float()).all(), (name, t)
        ref = loss_fn(*[a.detach().float() if a.is_floating_point() else a for a in args])
        assert float(loss.detach()) == pytest.approx(float(ref), rel=1e-5, abs=1e-5), (name, t)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_clustering_and_tsne(dtype):
    logits = torch.randn(16, 5, generator=gen(58)).to(dtype).requires_grad_()
    loss = IConClusteringLoss(0.2, 0.2)(torch.softmax(logits, 1), torch.arange(8).repeat(2))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad.float()).all()
    Y = torch.randn(12, 2, generator=gen(59)).to(dtype).requires_grad_()
    loss = TSNELoss(3.0)(Y, torch.randn(12, 5, generator=gen(60)))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(Y.grad.float()).all()


def test_extreme_temperatures_float32_finite():
    z1, z2 = torch.randn(64, 8, generator=gen(61)), torch.randn(64, 8, generator=gen(62))
    for t in (1e-3, 1e-2, 1e2):
        for loss_fn in (InfoNCE(t), GeneralizedNTXent(temperature=t), KernelInfoNCE(temperature=t)):
            a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
            loss = loss_fn(a, b)
            loss.backward()
            assert torch.isfinite(loss) and torch.isfinite(a.grad).all()


def test_iconclustering_loss_per_head_equals_the_per_head_general_path():
    """IConClusteringLoss's fused path (SparseRows targets) and per_head (all heads in one pass)
    give the general path's KL: icon_loss of the debiased p against cluster_log_q, per head."""
    from iconlearn.core import SparseRows, icon_loss
    from iconlearn.learned import cluster_log_q
    from iconlearn.losses import IConClusteringLoss
    from iconlearn.supervisory import debias

    g = torch.Generator().manual_seed(7)
    H, B, M, C = 4, 6, 14, 3
    probs = torch.softmax(torch.randn(H, M, C, generator=g, dtype=torch.float64), -1)
    idx = torch.randint(B, M, (B, 2), generator=g)
    idx[:, 1] = (idx[:, 0] + 1 - B) % (M - B) + B  # two distinct non-anchor columns
    val = torch.full((B, 2), 0.5, dtype=torch.float64)
    val[2] = 0.0  # a row without positives is left out of the mean
    target, own = SparseRows(val, idx), torch.arange(B)
    loss = IConClusteringLoss(0.6, 0.4)
    per_head = loss.per_head(probs[:, :B], target, probs)
    keep = val.sum(1) > 0
    for h in range(H):
        general = icon_loss(debias(target, 0.6, own), cluster_log_q(probs[h, :B], probs[h], exclude=own, alpha=0.4),
                            reduction="none")[keep].mean()
        assert torch.allclose(per_head[h], general, atol=1e-12)
        assert torch.allclose(loss(probs[h, :B], target=target, probs_ref=probs[h]), general, atol=1e-12)

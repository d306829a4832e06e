"""The divergences beside KL (iconlearn.core.icon_divergence) against plain float64 loops written
from their definitions, on the dense, sparse and smoothed forms of p; and the continuous Gaussian
I-Con (least squares) against a quadrature of eq. 3.1.1 computed by icon_loss on a fine grid."""
import math

import pytest
import torch

from iconlearn.core import DIVERGENCES, SparseRows, Smoothed, gaussian_icon_loss, icon_divergence, icon_loss, reverse_icon_loss

DT = torch.float64


def gen(seed):
    return torch.Generator().manual_seed(seed)


def ref_row(kind, p, q):
    """One row's divergence by a loop over columns (0 log 0 = 0)."""
    total = 0.0
    for a, b in zip(p, q):
        if kind == "kl":
            total += a * math.log(a / b) if a > 0 else 0.0
        elif kind == "reverse_kl":
            if b > 0:
                total += b * math.log(b / a) if a > 0 else math.inf
        elif kind == "js":
            m = (a + b) / 2
            total += 0.5 * ((a * math.log(a / m) if a > 0 else 0.0) + (b * math.log(b / m) if b > 0 else 0.0))
        elif kind == "tv":
            total += abs(a - b) / 2
        elif kind == "hellinger":
            total += (math.sqrt(a) - math.sqrt(b)) ** 2 / 2
        elif kind == "l2":
            total += (a - b) ** 2
    return total


def log_q_rows(B, M, seed, exclude_cols=None):
    """A random log q over M columns; ``exclude_cols[i]`` (a set) get -inf and no mass."""
    logits = torch.randn(B, M, generator=gen(seed), dtype=DT)
    if exclude_cols is not None:
        for i, cols in enumerate(exclude_cols):
            for j in cols:
                logits[i, j] = float("-inf")
    return torch.log_softmax(logits, 1)


def sparse_target(B, M, K, seed, pad=True):
    """K distinct random columns per row with random weights; with ``pad`` the last entry of some
    rows is padding (value 0, index repeating a listed column)."""
    g = gen(seed)
    idx = torch.stack([torch.randperm(M, generator=g)[:K] for _ in range(B)])
    val = torch.rand(B, K, generator=g, dtype=DT) + 0.1
    if pad:
        val[::2, -1] = 0.0
        idx[::2, -1] = idx[::2, 0]
    return SparseRows(val / val.sum(1, keepdim=True), idx)


def dense_of(sp, M):
    rows = []
    for v, ix in zip(sp.values.tolist(), sp.indices.tolist()):
        r = [0.0] * M
        for a, j in zip(v, ix):
            if a > 0:
                r[j] += a
        rows.append(r)
    return rows


def smoothed_rows(part_rows, alpha, excluded):
    """(1 - alpha) part + alpha / N_i over the row's candidates (loop)."""
    out = []
    for r, ex in zip(part_rows, excluded):
        n = len(r) - len(ex)
        out.append([0.0 if j in ex else (1 - alpha) * a + alpha / n for j, a in enumerate(r)])
    return out


def ref_mean(kind, P, log_q):
    Q = log_q.exp().tolist()
    return sum(ref_row(kind, p, q) for p, q in zip(P, Q)) / len(P)


KINDS = [k for k in DIVERGENCES]


@pytest.mark.parametrize("kind", KINDS)
def test_dense_target_matches_loop(kind):
    B, M = 5, 7
    logits = torch.randn(B, M, generator=gen(1), dtype=DT)
    logits[logits < -0.8] = float("-inf")  # dense p with zeros
    P = torch.softmax(logits, 1)
    if kind == "reverse_kl":  # finite only where p covers q's support: q on p's support
        log_q = torch.log_softmax(torch.randn(B, M, generator=gen(2), dtype=DT).masked_fill(P == 0, float("-inf")), 1)
    else:
        log_q = log_q_rows(B, M, 2)
    got = icon_divergence(P, log_q, kind)
    assert float(got) == pytest.approx(ref_mean(kind, P.tolist(), log_q), rel=1e-12, abs=1e-14)
    rows = icon_divergence(P, log_q, kind, reduction="none")
    assert rows.shape == (B,) and torch.allclose(rows.mean(), got)


@pytest.mark.parametrize("kind", KINDS)
def test_sparse_target_matches_loop(kind):
    B, M, K = 6, 9, 3
    sp = sparse_target(B, M, K, seed=3)
    log_q = log_q_rows(B, M, 4)
    got = icon_divergence(sp, log_q, kind)
    ref = ref_mean(kind, dense_of(sp, M), log_q)
    if kind == "reverse_kl":
        assert math.isinf(ref) and math.isinf(float(got))  # q has mass off p's support
    else:
        assert float(got) == pytest.approx(ref, rel=1e-12)
        assert torch.allclose(got, icon_divergence(sp.to_dense(M), log_q, kind), rtol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("exclude_form", ["none", "index", "mask"])
@pytest.mark.parametrize("part_form", ["sparse", "dense"])
def test_smoothed_target_matches_loop(kind, exclude_form, part_form):
    B, M, K, alpha = 5, 8, 2, 0.3
    g = gen(5)
    if exclude_form == "none":
        exclude, excluded = None, [set() for _ in range(B)]
    elif exclude_form == "index":
        exclude = torch.tensor([0, 3, 1, 7, 2])
        excluded = [{int(j)} for j in exclude]
    else:
        exclude = torch.rand(B, M, generator=g) < 0.25
        exclude[:, 0] = True
        excluded = [set(torch.nonzero(r).flatten().tolist()) for r in exclude]
    # the listed columns avoid each row's excluded columns
    idx = torch.stack([torch.tensor([j for j in torch.randperm(M, generator=g).tolist() if j not in ex][:K])
                       for ex in excluded])
    val = torch.rand(B, K, generator=g, dtype=DT) + 0.1
    sp = SparseRows(val / val.sum(1, keepdim=True), idx)
    part = sp if part_form == "sparse" else sp.to_dense(M)
    log_q = log_q_rows(B, M, 6, excluded)
    target = Smoothed(part, alpha, exclude)
    P = smoothed_rows(dense_of(sp, M), alpha, excluded)
    got = icon_divergence(target, log_q, kind)
    assert float(got) == pytest.approx(ref_mean(kind, P, log_q), rel=1e-11)


def test_kl_and_reverse_kl_are_the_core_directions():
    B, M = 4, 6
    P = torch.softmax(torch.randn(B, M, generator=gen(7), dtype=DT), 1)
    log_q = log_q_rows(B, M, 8)
    assert torch.equal(icon_divergence(P, log_q), icon_loss(P, log_q))
    assert torch.allclose(icon_divergence(P, log_q, "reverse_kl"), reverse_icon_loss(P.log(), log_q), rtol=1e-12)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "reverse_kl"])
def test_known_values_and_bounds(kind):
    """Identical rows give 0; disjoint supports give the divergence's maximum (JS log 2, TV 1,
    Hellinger 1, L2 = sum p^2 + sum q^2)."""
    B, M = 3, 6
    P = torch.softmax(torch.randn(B, M, generator=gen(9), dtype=DT), 1)
    assert float(icon_divergence(P, P.log(), kind)) == pytest.approx(0.0, abs=1e-14)
    p = SparseRows(torch.ones(B, 1, dtype=DT), torch.zeros(B, 1, dtype=torch.long))
    log_q = torch.log_softmax(torch.zeros(B, M, dtype=DT).index_fill(1, torch.tensor([0]), float("-inf")), 1)
    top = {"js": math.log(2), "tv": 1.0, "hellinger": 1.0, "l2": 1.0 + 1.0 / (M - 1), "kl": math.inf}[kind]
    got = float(icon_divergence(p, log_q, kind))
    assert got == top if math.isinf(top) else got == pytest.approx(top, rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck_through_log_q(kind):
    """Gradients with respect to the logits of q, through sparse and smoothed targets (and no NaN
    from the -inf of excluded columns)."""
    B, M = 3, 5
    sp = sparse_target(B, M, 2, seed=10, pad=False)
    own = torch.tensor([4, 4, 4])
    sp = SparseRows(sp.values, sp.indices.clamp_max(3))  # the own column 4 is never listed
    sp = SparseRows(torch.where(sp.indices[:, :1] == sp.indices[:, 1:], torch.tensor([[1.0, 0.0]], dtype=DT), sp.values),
                    sp.indices)
    target = Smoothed(sp, 0.2, own)
    logits = torch.randn(B, M, generator=gen(11), dtype=DT).requires_grad_()

    def f(lg):
        return icon_divergence(target, torch.log_softmax(lg.index_fill(1, torch.tensor([4]), float("-inf")), 1), kind)

    assert torch.autograd.gradcheck(f, (logits,), eps=1e-6, atol=1e-6)
    f(logits).backward()
    assert torch.isfinite(logits.grad).all()


def test_unknown_divergence():
    with pytest.raises(ValueError, match="divergence must be one of"):
        icon_divergence(torch.ones(1, 2) / 2, torch.zeros(1, 2), "wasserstein")


# --------------------------------------------------------------------------- continuous Gaussian I-Con


def test_gaussian_icon_is_least_squares_and_the_integral_of_eq_311():
    """KL(N(y, s^2) || N(f, s^2)) = (y - f)^2 / 2 s^2; the same from icon_loss on a fine grid of
    columns (the integral of eq. 3.1.1 as a sum), and torch's MSE times d / 2 s^2."""
    y, f = torch.randn(4, 3, generator=gen(12), dtype=DT), torch.randn(4, 3, generator=gen(13), dtype=DT)
    s = 0.8
    got = gaussian_icon_loss(y, f, s)
    assert float(got) == pytest.approx(float(torch.nn.functional.mse_loss(f, y)) * 3 / (2 * s**2), rel=1e-12)
    ref = sum(sum((float(a) - float(b)) ** 2 for a, b in zip(yi, fi)) / (2 * s**2) for yi, fi in zip(y, f)) / 4
    assert float(got) == pytest.approx(ref, rel=1e-12)
    # 1-D: p and q on a grid of 4001 columns over [-12, 12]: the discrete KL converges to the integral
    grid = torch.linspace(-12, 12, 4001, dtype=DT)
    yy, ff = y[:, 0], f[:, 0]
    log_p = torch.log_softmax(-(grid[None] - yy[:, None]) ** 2 / (2 * s**2), 1)
    log_q = torch.log_softmax(-(grid[None] - ff[:, None]) ** 2 / (2 * s**2), 1)
    assert float(icon_loss(log_p.exp(), log_q)) == pytest.approx(float(gaussian_icon_loss(yy[:, None], ff[:, None], s)),
                                                                 rel=1e-9)
    with pytest.raises(ValueError, match="sigma"):
        gaussian_icon_loss(y, f, 0.0)


def test_reverse_kl_sparse_target_finite_on_its_support():
    """A q that vanishes off p's listed columns gives the finite sum over them."""
    B, M = 3, 6
    sp = sparse_target(B, M, 3, seed=14, pad=False)
    support = torch.zeros(B, M, dtype=torch.bool).scatter_(1, sp.indices, True)
    log_q = torch.log_softmax(torch.randn(B, M, generator=gen(15), dtype=DT).masked_fill(~support, float("-inf")), 1)
    got = icon_divergence(sp, log_q, "reverse_kl")
    assert float(got) == pytest.approx(ref_mean("reverse_kl", dense_of(sp, M), log_q), rel=1e-12)

"""The I-Con equation (core.icon_loss and friends) against float64 loops written from eq. 3.1.1."""
import math

import pytest
import torch

from iconlearn.core import SparseRows, Smoothed, icon_loss, reverse_icon_loss, smooth_log_q

DT = torch.float64


def _rand_p(b, m, zeros=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = torch.rand(b, m, generator=g, dtype=DT)
    if zeros:
        p[p < 0.4] = 0.0
        p[:, 0] += 1e-3  # every row keeps some mass
    return p / p.sum(1, keepdim=True)


def _rand_log_q(b, m, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(b, m, generator=g, dtype=DT), 1)


def _kl_loop(p, q):
    """mean_i sum_j p log(p / q), 0 log 0 = 0, written as a plain loop."""
    total = 0.0
    for i in range(p.shape[0]):
        row = 0.0
        for j in range(p.shape[1]):
            pij, qij = float(p[i, j]), float(q[i, j])
            if pij > 0:
                row += pij * math.log(pij / qij)
        total += row
    return total / p.shape[0]


def test_dense_matches_loop_with_zeros():
    p, log_q = _rand_p(5, 7), _rand_log_q(5, 7)
    assert float(icon_loss(p, log_q)) == pytest.approx(_kl_loop(p, log_q.exp()), rel=1e-12, abs=1e-14)


def test_reductions_and_cross_entropy():
    p, log_q = _rand_p(4, 6), _rand_log_q(4, 6)
    rows = icon_loss(p, log_q, reduction="none")
    assert rows.shape == (4,)
    assert torch.allclose(icon_loss(p, log_q, reduction="sum"), rows.sum())
    entropy = -torch.special.xlogy(p, p).sum(1)
    assert torch.allclose(icon_loss(p, log_q, cross_entropy=True, reduction="none"), rows + entropy)
    with pytest.raises(ValueError, match="reduction"):
        icon_loss(p, log_q, reduction="avg")


def test_zero_p_with_minus_inf_q_is_zero_and_grad_finite():
    p = torch.tensor([[0.0, 1.0, 0.0]], dtype=DT)
    logits = torch.tensor([[0.3, -0.2, 0.1]], dtype=DT, requires_grad=True)
    log_q = torch.log_softmax(logits.masked_fill(torch.tensor([[True, False, False]]), float("-inf")), 1)
    loss = icon_loss(p, log_q)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()


def test_sparse_equals_dense():
    p, log_q = _rand_p(6, 9), _rand_log_q(6, 9)
    k = int((p > 0).sum(1).max())
    idx = torch.zeros(6, k, dtype=torch.long)
    val = torch.zeros(6, k, dtype=DT)
    for i in range(6):
        nz = p[i].nonzero().squeeze(1)
        idx[i, : len(nz)], val[i, : len(nz)] = nz, p[i, nz]
    sp = SparseRows(val, idx)
    assert torch.allclose(sp.to_dense(9), p)
    assert torch.allclose(icon_loss(sp, log_q), icon_loss(p, log_q), rtol=1e-12)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("exclude", ["none", "index", "mask"])
@pytest.mark.parametrize("sparse", [False, True])
def test_smoothed_equals_dense_debiased_loop(alpha, exclude, sparse):
    """(1 - a) p + a / N_i of eq. 3.3.1 without a dense matrix == the dense loop."""
    b, m = 5, 8
    excl_mask = torch.zeros(b, m, dtype=torch.bool)
    if exclude == "index":
        excl = torch.arange(b)
        excl_mask[torch.arange(b), excl] = True
    elif exclude == "mask":
        excl_mask[:, -2:] = True
        excl = excl_mask
    else:
        excl = None
    p = _rand_p(b, m).masked_fill(excl_mask, 0.0)
    p = p / p.sum(1, keepdim=True)
    logits = torch.randn(b, m, dtype=DT).masked_fill(excl_mask, float("-inf"))
    log_q = torch.log_softmax(logits, 1)
    part = p
    if sparse:
        idx = torch.argsort(-p, 1)[:, :5]
        part = SparseRows(p.gather(1, idx), idx)
        dense_part = part.to_dense(m)
    else:
        dense_part = p
    n = (~excl_mask).sum(1, keepdim=True).to(DT)
    ref_p = ((1 - alpha) * dense_part + alpha / n).masked_fill(excl_mask, 0.0)
    got = icon_loss(Smoothed(part, alpha, excl), log_q)
    assert float(got) == pytest.approx(_kl_loop(ref_p, log_q.exp()), rel=1e-10, abs=1e-12)


def test_reverse_kl_loop_and_nan_free_gradients():
    log_p = _rand_log_q(4, 5, seed=3)
    logits = torch.randn(4, 5, dtype=DT, requires_grad=True)
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[:, 0] = True  # q = 0 there, and p = 0 too: 0 log 0/0 = 0
    log_q = torch.log_softmax(logits.masked_fill(mask, float("-inf")), 1)
    log_p = log_p.masked_fill(mask, float("-inf"))
    loss = reverse_icon_loss(log_p, log_q)
    q, p = log_q.exp().detach(), log_p.exp()
    assert float(loss.detach()) == pytest.approx(_kl_loop(q, p), rel=1e-12)
    loss.backward()
    assert torch.isfinite(logits.grad).all()
    # p = 0 where q > 0: infinite divergence
    assert math.isinf(float(reverse_icon_loss(torch.full((1, 2), float("-inf"), dtype=DT).index_fill(1, torch.tensor([0]), 0.0),
                                              torch.log(torch.tensor([[0.5, 0.5]], dtype=DT)))))


@pytest.mark.parametrize("alpha", [0.0, 0.25, 1.0])
def test_smooth_log_q(alpha):
    log_q = _rand_log_q(3, 6)
    excl = torch.tensor([0, 2, 5])
    log_q = torch.log_softmax(log_q.scatter(1, excl[:, None], float("-inf")), 1)
    out = smooth_log_q(log_q, alpha, excl)
    ref = (1 - alpha) * log_q.exp() + alpha / 5
    ref = ref.scatter(1, excl[:, None], 0.0)
    assert torch.allclose(out.exp(), ref, atol=1e-14)
    assert torch.isinf(out.gather(1, excl[:, None])).all()
    assert torch.allclose(out.exp().sum(1), torch.ones(3, dtype=DT))


def test_icon_loss_gradcheck():
    p = _rand_p(3, 5).scatter(1, torch.arange(3)[:, None], 0.0)
    p = p / p.sum(1, keepdim=True)
    logits = torch.randn(3, 5, dtype=DT, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: icon_loss(Smoothed(p, 0.2, torch.arange(3)),
                                                        torch.log_softmax(x.scatter(1, torch.arange(3)[:, None], float("-inf")), 1)),
                                    (logits,))
    assert torch.autograd.gradcheck(lambda x: reverse_icon_loss(_rand_log_q(3, 5, 7), torch.log_softmax(x, 1)), (logits,))


def test_kl_is_zero_iff_equal():
    log_q = _rand_log_q(4, 6)
    assert float(icon_loss(log_q.exp(), log_q)) == pytest.approx(0.0, abs=1e-14)
    assert float(reverse_icon_loss(log_q, log_q)) == pytest.approx(0.0, abs=1e-14)
    assert float(icon_loss(_rand_p(4, 6), log_q)) > 0

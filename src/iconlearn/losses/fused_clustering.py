"""The I-Con clustering loss in one fused pass (the fast path of
:class:`iconlearn.losses.IConClusteringLoss`, and of :class:`iconlearn.IConClustering` for all heads
at once).

For each anchor i (rows) over the batch's M columns, the anchor's own column excluded:

    q(j|i)  = Q_ij / rest_i,   Q = (phi / s) phi_ref^T,  s_c = sum_k phi_ref_kc,  rest_i = sum_{j != i} Q_ij
    q'(j|i) = (1 - alpha_q) q(j|i) + alpha_q / (M - 1)                      (debiased q)
    p'(j|i) = (1 - alpha_p) p(j|i) + alpha_p / (M - 1)                      (eq. 3.3.1, p sparse)
    H_i     = -sum_{j != i} p'(j|i) log q'(j|i)                             (eq. 1, cross-entropy form)

which is :func:`iconlearn.core.icon_loss` of :func:`iconlearn.learned.cluster_log_q` and
:func:`iconlearn.supervisory.debias` minus p's (constant) entropy, and is tested against the formula
and against them. The general path materialises log q', its masked copies and autograd's
intermediates, a dozen fresh (B x M) tensors per step; here each head's step writes one (B x M)
buffer and transforms it in place, the backward pass written out:

    dH_i/dq'_ij = -p'(j|i) / q'_ij,   dH_i/dQ_ij = c_i dH_i/dq'_ij + r_i   (j != i),
    c_i = (1 - alpha_q) / rest_i,     r_i = -sum_j dH_i/dq'_ij (q'_ij - alpha_q / (M - 1)) / rest_i,

and sum_j p'(j|i) = alpha_p + (1 - alpha_p) sum_k p_ik gives the first half of r_i in closed form.
"""
from __future__ import annotations

import torch
from torch import Tensor

_TINY = 1e-30


class _DebiasedClusterCrossEntropy(torch.autograd.Function):
    """H (H x B) from a = phi / s (H x B x C) and b = phi_ref (H x M x C); the sparse target (B x K)
    and the own columns (B,) are shared by the heads. Per head, the forward pass writes one (B x M)
    buffer (the product Q), turns it into q' in place and saves it; the backward pass writes one
    more (dH/dQ, computed in place). Fresh allocations of that size, not the arithmetic, dominated
    the step on a CPU."""

    @staticmethod
    def forward(ctx, a: Tensor, b: Tensor, indices: Tensor, values: Tensor, own: Tensor, alpha_p: float,
                alpha_q: float):
        n = max(b.shape[1] - 1, 1)  # one column: no candidates (no row has a positive)
        own_ix, c0 = own.view(-1, 1), alpha_q / n
        out, saved, rests = [], [], []
        for h in range(a.shape[0]):
            qp = a[h] @ b[h].T  # Q
            rest = (qp.sum(1, keepdim=True) - qp.gather(1, own_ix)).clamp_min(_TINY)
            qp.mul_((1.0 - alpha_q) / rest).add_(c0)
            if alpha_q == 0:
                qp.clamp_min_(_TINY)
            qp.scatter_(1, own_ix, 1.0)  # log 1 = 0: the own column drops out of the sums
            sparse = (values * qp.gather(1, indices).log()).sum(1)
            uniform = _row_log_sums(qp)
            out.append(-((1.0 - alpha_p) * sparse + (alpha_p / n) * uniform))
            saved.append(qp)
            rests.append(rest)
        ctx.save_for_backward(a, b, indices, values, own, torch.stack(rests), *saved)
        ctx.alphas = (alpha_p, alpha_q)
        return torch.stack(out)

    @staticmethod
    def backward(ctx, grad: Tensor):
        a, b, indices, values, own, rests, *saved = ctx.saved_tensors
        alpha_p, alpha_q = ctx.alphas
        n = max(b.shape[1] - 1, 1)  # one column: no candidates (no row has a positive)
        own_ix = own.view(-1, 1)
        # sum_j dH/dq'_ij q'_ij = -sum_j p'(j|i) in closed form (the own column holds q' = 1, g = 0)
        mass = alpha_p + (1.0 - alpha_p) * values.sum(1, keepdim=True)
        grad_a, grad_b = torch.empty_like(a), torch.empty_like(b)
        for h, qp in enumerate(saved):
            q_listed = qp.gather(1, indices)
            g = qp.reciprocal().mul_(-alpha_p / n).scatter_(1, own_ix, 0.0)  # dH/dq' of p's uniform part
            g.scatter_add_(1, indices, -(1.0 - alpha_p) * values / q_listed)  # ... and of its sparse part
            r = (mass + (alpha_q / n) * g.sum(1, keepdim=True)) / rests[h]
            g.mul_((1.0 - alpha_q) / rests[h]).add_(r).scatter_(1, own_ix, 0.0).mul_(grad[h].unsqueeze(1))
            grad_a[h] = g @ b[h]
            grad_b[h] = g.T @ a[h]
        return grad_a, grad_b, None, None, None, None, None


def _row_log_sums(x: Tensor, rows: int = 256) -> Tensor:
    """sum_j log x_ij per row, ``rows`` rows at a time (a small temporary instead of a (B x M) one)."""
    return torch.cat([x[r:r + rows].log().sum(1) for r in range(0, x.shape[0], rows)])


def cluster_cross_entropy(phi: Tensor, phi_ref: Tensor, indices: Tensor, values: Tensor, own: Tensor,
                          alpha_p: float, alpha_q: float) -> Tensor:
    """Rows H_i of the debiased I-Con clustering loss (module docstring), for one or many heads.

    Args:
        phi: (B x C) or (H x B x C) soft assignments of the anchors.
        phi_ref: (M x C) or (H x M x C) assignments of the columns (the cluster sizes are theirs).
        indices, values: the sparse target p, (B x K) column indices and probabilities.
        own: (B,) each anchor's own column (excluded from the candidates).
    Returns (B,) or (H x B).
    """
    squeeze = phi.dim() == 2
    a = phi.unsqueeze(0) if squeeze else phi
    b = phi_ref.unsqueeze(0) if squeeze else phi_ref
    dtype = torch.promote_types(a.dtype, torch.float32)
    a, b = a.to(dtype), b.to(dtype)
    out = _DebiasedClusterCrossEntropy.apply(a / b.sum(-2, keepdim=True).clamp_min(_TINY), b, indices,
                                             values.to(dtype), own.long(), float(alpha_p), float(alpha_q))
    return out[0] if squeeze else out

"""The objective and its gradient: t-SNE and SNE as I-Con (Theorems 1-2).

**t-SNE** minimises KL(P || Q) between the joint p_ij (rows and columns: all pairs) and the
Student-t joint q_ij = w_ij / Z, w_ij = (1 + ||y_i - y_j||^2 / nu)^(-e), e = (nu + 1) / 2
(:class:`iconlearn.learned.StudentTKernel`), Z = sum_{k != l} w_kl. As I-Con it is
``icon_loss`` with one row holding every pair (:func:`tsne_exact_loss`: literally that call).

The large-N path differentiates the same KL by hand, like openTSNE. With C = sum p log p
- sum p log w + log Z,

    dC/dy_i = (4 e / nu) [ sum_j p_ij u_ij (y_i - y_j)  -  (1 / Z) sum_j u_ij w_ij (y_i - y_j) ],

u_ij = (1 + ||y_i - y_j||^2 / nu)^-1: an attractive sum over the sparse p (nnz terms) and a
repulsive sum over all pairs done by FFT interpolation (:mod:`.interpolation`) with the four
charges (1, y, ||y||^2) and kernel u w, from which Z follows too (w = u w (1 + d^2 / nu)).
:func:`tsne_gradient` returns this gradient divided by 4, openTSNE's scale (so that its
learning rate N / exaggeration applies unchanged); early exaggeration multiplies the attractive
term only. The tests check it against autograd of :func:`tsne_exact_loss`.

**SNE** minimises mean_i KL(p(.|i) || q(.|i)) with conditional p and a Gaussian conditional
q(j|i) = exp(-||y_i - y_j||^2) / Z_i (:class:`iconlearn.learned.GaussianKernel`, sigma^2 = 1/2):
I-Con's own row-wise form. Gradient: (2 / N) sum_j (p_j|i - q_j|i + p_i|j - q_i|j)(y_i - y_j).
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core import icon_loss
from ..learned.kernels import GaussianKernel, StudentTKernel
from .affinities import SparseAffinities
from .interpolation import Grid, kernel_sums

def _exponent(dof: float) -> float:
    return (dof + 1.0) / 2.0


def tsne_exact_loss(P: Tensor, y: Tensor, dof: float = 1.0) -> Tensor:
    """KL(P || Q) for a dense joint P (N x N, sums to 1, zero diagonal): t-SNE as ``icon_loss``, with
    Q the Student-t kernel normalised over all pairs i != j (one row of N^2 entries)."""
    return icon_loss(P.reshape(1, -1), StudentTKernel(dof).joint(y))


def sne_exact_loss(P: Tensor, y: Tensor) -> Tensor:
    """mean_i KL(p(.|i) || q(.|i)) for dense conditional P (N x N, rows sum to 1): SNE as ``icon_loss``."""
    return icon_loss(P, GaussianKernel()(y))


def _attraction(P: SparseAffinities, y: Tensor, dof: float) -> tuple[Tensor, Tensor]:
    """sum_j p_ij u_ij (y_i - y_j) over the sparse p, and sum_ij p_ij log u_ij (for the KL)."""
    diff = y[P.rows] - y[P.cols]
    u = 1.0 / (1.0 + (diff * diff).sum(1) / dof)
    a = P.values.to(y.dtype) * u
    out = torch.zeros_like(y)
    out.index_add_(0, P.rows, a[:, None] * diff)
    return out, lambda: (P.values.to(torch.float64) * u.log().to(torch.float64)).sum()


def _fft_repulsion(y: Tensor, dof: float, fft: dict, grid: Grid | None = None) -> tuple[Tensor, Tensor]:
    """(sum_j u_ij w_ij (y_i - y_j), Z) for all pairs j != i, by interpolation."""
    e = _exponent(dof)
    sq = (y * y).sum(1, keepdim=True)
    charges = torch.cat([torch.ones_like(sq), y, sq], 1)
    phi = kernel_sums(y, y, charges, lambda d2: (1.0 + d2 / dof) ** (-(e + 1.0)), grid=grid, **fft)
    d = y.shape[1]
    phi0, phiy, phisq = phi[:, :1], phi[:, 1:1 + d], phi[:, 1 + d:]
    z = ((1.0 + sq / dof) * phi0 - (2.0 / dof) * (y * phiy).sum(1, keepdim=True) + phisq / dof).sum() - y.shape[0]
    return y * phi0 - phiy, z.clamp_min(torch.finfo(y.dtype).tiny)


def _exact_repulsion(y: Tensor, dof: float) -> tuple[Tensor, Tensor]:
    e = _exponent(dof)
    d2 = torch.cdist(y, y).pow(2)
    u = 1.0 / (1.0 + d2 / dof)
    u.fill_diagonal_(0.0)
    w = u ** e
    uw = u * w
    return y * uw.sum(1, keepdim=True) - uw @ y, w.sum()


def tsne_gradient(y: Tensor, P: SparseAffinities, dof: float = 1.0, exaggeration: float = 1.0,
                  method: str = "fft", fft: dict | None = None, with_kl: bool = False,
                  grid: Grid | None = None) -> tuple[Tensor, Tensor | None]:
    """openTSNE-scaled gradient (dC/dy / 4) of the exaggerated t-SNE objective, and optionally the KL.

    ``method``: ``"fft"`` (interpolation, 1-3 dimensions) or ``"exact"`` (all pairs, O(N^2)).
    """
    e = _exponent(dof)
    attr, p_log_u = _attraction(P, y, dof)
    if method == "fft":
        rep, z = _fft_repulsion(y, dof, fft or {}, grid)
    else:
        rep, z = _exact_repulsion(y, dof)
    grad = (e / dof) * (exaggeration * attr - rep / z)
    kl = None
    if with_kl:
        p = P.values.to(torch.float64)
        pos = p > 0
        # KL = sum p log p - sum p log w + log Z, with log w = e log u
        kl = (p[pos] * p[pos].log()).sum() - e * p_log_u() + torch.log(z.to(torch.float64)) * p.sum()
    return grad, kl


def sne_gradient(y: Tensor, P: SparseAffinities, exaggeration: float = 1.0, method: str = "fft",
                 fft: dict | None = None, with_kl: bool = False) -> tuple[Tensor, Tensor | None]:
    """Gradient of SNE's mean_i KL(p(.|i) || q(.|i)) (Gaussian q), divided by 4 as for t-SNE,
    and optionally the loss. P holds the conditional p(j|i) (rows sum to 1)."""
    n = y.shape[0]
    diff = y[P.rows] - y[P.cols]
    sq_e = (diff * diff).sum(1)
    pv = P.values.to(y.dtype)
    # attraction: sum_j (p_j|i + p_i|j)(y_i - y_j); the transposed term lands on the column point
    attr = torch.zeros_like(y)
    attr.index_add_(0, P.rows, pv[:, None] * diff)
    attr.index_add_(0, P.cols, -pv[:, None] * diff)
    kern = lambda d2: torch.exp(-d2)  # noqa: E731  (GaussianKernel with sigma^2 = 1/2)
    if method == "fft":
        fft = dict(fft or {})
        grid = Grid.covering(y, **{k: fft[k] for k in ("n_interp", "min_intervals", "ints_in_interval") if k in fft})
        phi = kernel_sums(y, y, torch.cat([torch.ones_like(y[:, :1]), y], 1), kern, grid=grid)
        z = (phi[:, :1] - 1.0).clamp_min(torch.finfo(y.dtype).tiny)  # self term exp(0) = 1 removed
        rep_row = (y * phi[:, :1] - phi[:, 1:]) / z
        phi2 = kernel_sums(y, y, torch.cat([1.0 / z, y / z], 1), kern, grid=grid)
        rep_col = y * phi2[:, :1] - phi2[:, 1:]
    else:
        d2 = torch.cdist(y, y).pow(2)
        ex = torch.exp(-d2)
        ex.fill_diagonal_(0.0)
        z = ex.sum(1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
        q = ex / z
        rep_row = y * q.sum(1, keepdim=True) - q @ y
        rep_col = y * q.sum(0)[:, None] - q.T @ y
    grad = (2.0 / n) * (exaggeration * attr - rep_row - rep_col) / 4.0
    kl = None
    if with_kl:
        p = P.values.to(torch.float64)
        pos = p > 0
        kl = ((p[pos] * p[pos].log()).sum() + (p * sq_e.to(torch.float64)).sum()
              + torch.log(z.to(torch.float64)).sum()) / n
    return grad, kl


def reference_gradient(y_new: Tensor, P: SparseAffinities, y_ref: Tensor, dof: float | None, exaggeration: float,
                       method: str, fft: dict | None = None, grid: Grid | None = None) -> Tensor:
    """Gradient (/4) for new points against a frozen reference embedding: each new point i has its
    own conditional KL(p(.|i) || q(.|i)), q(j|i) = w_ij / sum_k w_ik over the reference points (the
    I-Con row form, as openTSNE's ``transform``). ``dof=None`` is SNE's Gaussian q, otherwise Student-t.

    With w = (1 + d^2/nu)^-e the gradient is (2e/nu)[sum_j p_j|i u_ij (y_i - y_j) - sum_j u_ij w_ij (y_i - y_j) / Z_i];
    with w = exp(-d^2) it is 2[sum_j p_j|i (y_i - y_j) - sum_j w_ij (y_i - y_j) / Z_i].
    """
    gaussian = dof is None
    diff = y_new[P.rows] - y_ref[P.cols]
    pv = P.values.to(y_new.dtype)
    a = pv if gaussian else pv / (1.0 + (diff * diff).sum(1) / dof)
    attr = torch.zeros_like(y_new)
    attr.index_add_(0, P.rows, a[:, None] * diff)
    if gaussian:
        scale, force = 2.0, (lambda d2: torch.exp(-d2))
    else:
        e = _exponent(dof)
        scale, force = 2.0 * e / dof, (lambda d2: (1.0 + d2 / dof) ** (-(e + 1.0)))
    if method == "fft":
        sq = (y_ref * y_ref).sum(1, keepdim=True)
        charges = torch.cat([torch.ones_like(sq), y_ref] + ([] if gaussian else [sq]), 1)
        phi = kernel_sums(y_new, y_ref, charges, force, grid=grid, **(fft or {}))
        d = y_new.shape[1]
        phi0, phiy = phi[:, :1], phi[:, 1:1 + d]
        if gaussian:
            z = phi0
        else:
            sq_new = (y_new * y_new).sum(1, keepdim=True)
            z = (1.0 + sq_new / dof) * phi0 - (2.0 / dof) * (y_new * phiy).sum(1, keepdim=True) + phi[:, 1 + d:] / dof
        rep = y_new * phi0 - phiy
    else:
        d2 = torch.cdist(y_new, y_ref).pow(2)
        kf = force(d2)
        z = (torch.exp(-d2) if gaussian else (1.0 + d2 / dof) ** (-_exponent(dof))).sum(1, keepdim=True)
        rep = y_new * kf.sum(1, keepdim=True) - kf @ y_ref
    z = z.clamp_min(torch.finfo(y_new.dtype).tiny)
    return (scale / 4.0) * (exaggeration * attr - rep / z)

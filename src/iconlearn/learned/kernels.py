"""Learned distributions q(j|i) from kernels on embeddings (I-Con Table 1; Kernel-InfoNCE).

A kernel gives a log-affinity ``log k(z_i, z_j)`` for every anchor i and candidate j; the learned
distribution is its normalisation over the row's candidates,

    q(j|i) = k(z_i, z_j) / sum_{k candidate} k(z_i, z_k),

computed as a masked log-softmax (:func:`masked_log_softmax`). Candidates exclude the anchor itself when
the rows and columns are the same points (``k != i`` in Table 1).

Kernels compose, as in the kernel algebra of the I-Con authors' code: ``k1 + k2`` (sum), ``w * k``
(weighted), ``k1 * k2`` (product), ``k.normalize()`` (the row-normalised q used as an affinity, so a
sum of normalised kernels is a mixture of distributions rather than of kernels), ``k.leak(alpha)``
(the learned-side debiasing (1 - alpha) q + alpha / N_i of I-Con section 3.3). Distances other than
the Euclidean one (Manhattan / Minkowski, the Poincare ball's) are a ``metric`` of the exponential
and Student-t kernels; :class:`LearnableStudentTKernel` learns its scale and degrees of freedom.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core import candidate_mask, smooth_log_q
from ..distances import METRICS, distances, sq_distances, to_poincare_ball


def compute_dtype(*tensors: Tensor) -> torch.dtype:
    """float32 for half-precision inputs (float16 / bfloat16), else the inputs' promoted dtype.

    Log-affinities, their log-softmax and the KL are computed in at least float32, as autocast does
    for softmax and cross-entropy: a temperature of 0.01 turns cosines into logits of +-100, and
    half-precision sums over thousands of columns lose the small terms.
    """
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return torch.promote_types(dtype, torch.float32)


def masked_log_softmax(logits: Tensor, exclude: Tensor | None = None) -> Tensor:
    """log q = log-softmax of log-affinities over the candidate columns; excluded columns are -inf."""
    mask = candidate_mask(exclude, tuple(logits.shape), logits.device)
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    return F.log_softmax(logits, dim=1)


def self_exclusion(x: Tensor, y: Tensor | None, exclude_self: bool, offset: int = 0) -> Tensor | None:
    """The anchor's own column (i + offset) when rows and columns are the same points."""
    if y is not None or not exclude_self:
        return None
    return torch.arange(x.shape[0], device=x.device) + offset


class Kernel:
    """A log-affinity ``log k(x, y)`` between every row of x and every row of y, and its q.

    Calling the kernel returns log q (B x M): ``kernel(x)`` compares the batch with itself and
    excludes the diagonal; ``kernel(x, y)`` compares anchors x with candidates y (pass
    ``exclude`` to drop columns).
    """

    exclude_self: bool = True

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def candidate_log_affinity(self, x: Tensor, y: Tensor, exclude: Tensor | None = None) -> Tensor:
        """The log-affinity given the rows' candidates (``exclude`` as in :class:`iconlearn.core.Smoothed`):
        :meth:`log_affinity` itself except for kernels that normalise or leak over the candidates."""
        return self.log_affinity(x, y)

    def __call__(self, x: Tensor, y: Tensor | None = None, exclude: Tensor | None = None) -> Tensor:
        if exclude is None:
            exclude = self_exclusion(x, y, self.exclude_self)
        y = x if y is None else y
        dtype = compute_dtype(x, y)
        return masked_log_softmax(self.candidate_log_affinity(x.to(dtype), y.to(dtype), exclude), exclude)

    def joint(self, x: Tensor) -> Tensor:
        """log Q over all ordered pairs i != j, normalised jointly (t-SNE's q_ij), as one (1 x N^2)
        row: the I-Con loss of a joint P against it is KL(P || Q)."""
        x = x.to(compute_dtype(x))
        logits = self.log_affinity(x, x)
        eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
        return masked_log_softmax(logits.masked_fill(eye, float("-inf")).reshape(1, -1))

    # ---- the algebra: new kernels, the operands are not modified
    def __add__(self, other: "Kernel") -> "SumKernel":
        if not isinstance(other, Kernel):
            return NotImplemented
        parts = [(k, lw) for side in (self, other)
                 for k, lw in (zip(side.kernels, side.log_weights) if type(side) is SumKernel else [(side, 0.0)])]
        return SumKernel([k for k, _ in parts], [math.exp(lw) for _, lw in parts])

    def __mul__(self, other) -> "Kernel":
        if isinstance(other, Kernel):
            return ProductKernel([self, other])
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return SumKernel([self], [float(other)])
        return NotImplemented

    __rmul__ = __mul__

    def normalize(self) -> "NormalizedKernel":
        """This kernel's q (normalised over each row's candidates) as an affinity."""
        return NormalizedKernel(self)

    def leak(self, alpha: float) -> "LeakKernel":
        """(1 - alpha) q + alpha / N_i: this kernel's q debiased (I-Con section 3.3, learned side)."""
        return LeakKernel(self, alpha)


class CosineKernel(Kernel):
    """exp(cos(x, y) / tau): the Gaussian kernel on the unit sphere used by InfoNCE, SupCon and CLIP
    (I-Con Theorem 3; ||x - y||^2 = 2 - 2 x.y for unit vectors)."""

    def __init__(self, temperature: float = 0.5, normalize_inputs: bool = True, exclude_self: bool = True):
        self.temperature = temperature
        self.normalize_inputs = normalize_inputs
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        if self.normalize_inputs:
            x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
        return (x @ y.T) / self.temperature


class GaussianKernel(Kernel):
    """exp(-||x - y||^2 / (2 sigma^2)) (SNE's q, I-Con Theorem 1, with sigma^2 = 1/2 by default)."""

    def __init__(self, sigma: float = math.sqrt(0.5), exclude_self: bool = True):
        self.sigma = sigma
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return -sq_distances(x, y) / (2.0 * self.sigma**2)


def _check_metric(metric: str, normalize_inputs: bool = False) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if metric == "poincare" and normalize_inputs:
        raise ValueError("metric='poincare' needs normalize_inputs=False (the unit sphere is the ball's boundary)")
    return metric


def _metric_sq_distances(x: Tensor, y: Tensor, metric: str, p: float) -> Tensor:
    """Squared pairwise distances of a kernel; the Poincare metric maps its inputs onto the ball first."""
    if metric == "euclidean":
        return sq_distances(x, y)
    if metric == "poincare":
        x, y = to_poincare_ball(x), to_poincare_ball(y)
    return distances(x, y, metric, p) ** 2


def student_t_log_kernel(sq_dist: Tensor, dof, scale=1.0) -> Tensor:
    """log (1 + d^2 / (dof scale^2))^(-(dof + 1) / 2), the Student-t kernel (Cauchy at dof = scale = 1)."""
    return -0.5 * (dof + 1.0) * torch.log1p(sq_dist / (dof * scale**2))


class StudentTKernel(Kernel):
    """(1 + d(x, y)^2 / dof)^(-(dof + 1) / 2): t-SNE's heavy-tailed q (Cauchy at dof = 1; I-Con Theorem 2).
    ``metric`` as for :class:`ExponentialKernel` (``"poincare"``: a hyperbolic t-SNE kernel)."""

    def __init__(self, dof: float = 1.0, exclude_self: bool = True, metric: str = "euclidean", p: float = 2.0):
        self.dof = dof
        self.exclude_self = exclude_self
        self.metric, self.p = _check_metric(metric), p

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return student_t_log_kernel(_metric_sq_distances(x, y, self.metric, self.p), self.dof)


class LearnableStudentTKernel(Kernel, nn.Module):
    """The Student-t kernel (1 + d^2 / (nu s^2))^(-(nu + 1) / 2) with a learnable scale s and
    degrees of freedom nu (both kept positive through their logarithms; ``learn_dof`` /
    ``learn_scale`` freeze either). An ``nn.Module``: a loss that holds it (e.g.
    ``InfoNCE(kernel=...)``, ``TSNELoss``) registers its parameters, so the optimiser trains them.

    nu -> infinity approaches the Gaussian kernel exp(-d^2 / 2 s^2); nu = 1, s = 1 is t-SNE's Cauchy
    kernel. (The I-Con authors' Student-t learns a scale g of 1 / (1 + (d^2 / g^2)^(nu / 2)), a
    different family; this is the usual Student-t shape of parametric t-SNE.)
    """

    def __init__(self, dof: float = 1.0, scale: float = 1.0, learn_dof: bool = True, learn_scale: bool = True,
                 exclude_self: bool = True, metric: str = "euclidean", p: float = 2.0):
        nn.Module.__init__(self)
        if not (dof > 0 and scale > 0):
            raise ValueError(f"dof and scale must be positive, got dof={dof!r}, scale={scale!r}")
        log_dof, log_scale = torch.tensor(math.log(dof)), torch.tensor(math.log(scale))
        self.log_dof = nn.Parameter(log_dof, requires_grad=learn_dof)
        self.log_scale = nn.Parameter(log_scale, requires_grad=learn_scale)
        self.exclude_self = exclude_self
        self.metric, self.p = _check_metric(metric), p

    @property
    def dof(self) -> Tensor:
        return self.log_dof.exp()

    @property
    def scale(self) -> Tensor:
        return self.log_scale.exp()

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        d2 = _metric_sq_distances(x, y, self.metric, self.p)
        return student_t_log_kernel(d2, self.dof.to(d2.dtype), self.scale.to(d2.dtype))


class ExponentialKernel(Kernel):
    """exp(-d(x, y)^gamma / tau), the exponential kernels of Kernel-InfoNCE.

    gamma = 2 is the Gaussian kernel, gamma = 1 the Laplacian. Embeddings are L2-normalised
    first by default, as in the Kernel-InfoNCE experiments. ``metric`` is the distance d:
    ``"euclidean"`` (the paper's), ``"manhattan"`` / ``"minkowski"`` with exponent ``p`` (the
    ``distance_p`` of the authors' code), or ``"poincare"`` (hyperbolic: the embeddings are mapped onto
    the ball by :func:`iconlearn.distances.to_poincare_ball`; needs ``normalize_inputs=False``).
    """

    def __init__(self, gamma: float = 1.0, temperature: float = 0.5, normalize_inputs: bool = True,
                 exclude_self: bool = True, metric: str = "euclidean", p: float = 2.0):
        self.gamma = gamma
        self.temperature = temperature
        self.normalize_inputs = normalize_inputs
        self.exclude_self = exclude_self
        self.metric, self.p = _check_metric(metric, normalize_inputs), p

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        if self.normalize_inputs:
            x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
        return -_metric_sq_distances(x, y, self.metric, self.p).pow(self.gamma / 2.0) / self.temperature


class LaplacianKernel(ExponentialKernel):
    """exp(-||x - y|| / tau)."""

    def __init__(self, temperature: float = 0.5, normalize_inputs: bool = True, exclude_self: bool = True):
        super().__init__(1.0, temperature, normalize_inputs, exclude_self)


class SumKernel(Kernel):
    """sum_k w_k k_k(x, y): the simple-sum mixture of Kernel-InfoNCE (kernels on the same embedding,
    inside one softmax), and ``k1 + k2`` / ``w * k`` of the kernel algebra."""

    def __init__(self, kernels: Sequence[Kernel], weights: Sequence[float] | None = None, exclude_self: bool = True):
        self.kernels = list(kernels)
        weights = [1.0] * len(self.kernels) if weights is None else list(weights)
        if len(weights) != len(self.kernels) or any(not w > 0 for w in weights):
            raise ValueError(f"weights must be {len(self.kernels)} positive numbers, got {weights}")
        self.log_weights = [math.log(w) for w in weights]
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return self.candidate_log_affinity(x, y, None)

    def candidate_log_affinity(self, x: Tensor, y: Tensor, exclude: Tensor | None = None) -> Tensor:
        parts = torch.stack([lw + k.candidate_log_affinity(x, y, exclude) for k, lw in zip(self.kernels, self.log_weights)])
        # columns where every part is -inf (excluded by normalised / leaked parts) stay -inf without a NaN gradient
        dead = torch.isneginf(parts).all(0)
        return torch.logsumexp(parts.masked_fill(dead, 0.0), dim=0).masked_fill(dead, float("-inf"))


class ProductKernel(Kernel):
    """prod_k k_k(x, y) (``k1 * k2``): log-affinities add."""

    def __init__(self, kernels: Sequence[Kernel], exclude_self: bool = True):
        self.kernels = list(kernels)
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return self.candidate_log_affinity(x, y, None)

    def candidate_log_affinity(self, x: Tensor, y: Tensor, exclude: Tensor | None = None) -> Tensor:
        return sum(k.candidate_log_affinity(x, y, exclude) for k in self.kernels)


class NormalizedKernel(Kernel):
    """k(x_i, y_j) / sum_{k candidate} k(x_i, y_k) (``k.normalize()``): the kernel's own q as an
    affinity. Alone it gives the same q as the kernel (normalising twice changes nothing); inside a
    sum it weighs the components' distributions, not their raw affinities."""

    def __init__(self, kernel: Kernel, exclude_self: bool = True):
        self.kernel = kernel
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return self.candidate_log_affinity(x, y, None)

    def candidate_log_affinity(self, x: Tensor, y: Tensor, exclude: Tensor | None = None) -> Tensor:
        return masked_log_softmax(self.kernel.candidate_log_affinity(x, y, exclude), exclude)


class LeakKernel(Kernel):
    """(1 - alpha) q(j|i) + alpha / N_i (``k.leak(alpha)``): the kernel's q with the uniform leak of
    I-Con's debiasing (section 3.3, applied to the learned side; :func:`iconlearn.core.smooth_log_q`)."""

    def __init__(self, kernel: Kernel, alpha: float, exclude_self: bool = True):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha!r}")
        self.kernel, self.alpha = kernel, float(alpha)
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return self.candidate_log_affinity(x, y, None)

    def candidate_log_affinity(self, x: Tensor, y: Tensor, exclude: Tensor | None = None) -> Tensor:
        log_q = masked_log_softmax(self.kernel.candidate_log_affinity(x, y, exclude), exclude)
        return smooth_log_q(log_q, self.alpha, exclude)


def slice_sizes(width: int, parts: int, sizes: Sequence[int] | None = None) -> list[int]:
    """The slice widths of a concatenated embedding: ``sizes`` as given (they must add up to
    ``width``) or an even split."""
    if sizes is None:
        base, rest = divmod(width, parts)
        sizes = [base + (i < rest) for i in range(parts)]
    sizes = list(sizes)
    if sum(sizes) != width or len(sizes) != parts:
        raise ValueError(f"slice sizes {sizes} do not add up to the embedding dimension {width}")
    return sizes


class SliceKernel(Kernel):
    """A kernel on slice ``part`` (of ``parts``) of the embedding; ``normalize_inputs`` L2-normalises
    the whole embedding before it is sliced (the slices are then not unit vectors themselves)."""

    def __init__(self, kernel: Kernel, part: int, parts: int, sizes: Sequence[int] | None = None,
                 normalize_inputs: bool = False, exclude_self: bool = True):
        self.kernel, self.part, self.parts = kernel, part, parts
        self.sizes = None if sizes is None else list(sizes)
        self.normalize_inputs = normalize_inputs
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return self.candidate_log_affinity(x, y, None)

    def candidate_log_affinity(self, x: Tensor, y: Tensor, exclude: Tensor | None = None) -> Tensor:
        if self.normalize_inputs:
            x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
        sizes = slice_sizes(x.shape[1], self.parts, self.sizes)
        a = sum(sizes[: self.part])
        b = a + sizes[self.part]
        return self.kernel.candidate_log_affinity(x[:, a:b], y[:, a:b], exclude)


class ConcatSumKernel(SumKernel):
    """Concatenation-sum mixture sum_k w_k k_k(x[S_k], y[S_k]) of Kernel-InfoNCE: each kernel on its
    own slice S_k of the embedding, inside one softmax. ``sizes`` gives the slice widths (None splits
    evenly); ``normalize_inputs`` L2-normalises the whole embedding before it is sliced, as the
    authors' projection head does (give the slice kernels ``normalize_inputs=False`` then)."""

    def __init__(self, kernels: Sequence[Kernel], sizes: Sequence[int] | None = None, exclude_self: bool = True,
                 normalize_inputs: bool = False, weights: Sequence[float] | None = None):
        self.sizes = None if sizes is None else list(sizes)
        self.normalize_inputs = normalize_inputs
        slices = [SliceKernel(k, m, len(kernels), self.sizes, normalize_inputs) for m, k in enumerate(kernels)]
        super().__init__(slices, weights, exclude_self)


class DotKernel(Kernel):
    """exp(x . y / tau) without normalisation: class prototypes / logits (cross-entropy, Corollary 1)."""

    def __init__(self, temperature: float = 1.0, exclude_self: bool = False):
        self.temperature = temperature
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return (x @ y.T) / self.temperature


class PointClusterKernel(Kernel):
    """phi_i . phi_j on soft cluster assignments: the "shared cluster likelihood by point" of the
    InfoNCE-clustering row of I-Con Table 1. Normalised per point,

        q(j|i) = phi_i . phi_j / sum_{k != i} phi_i . phi_k,

    the denominator being the expected size of x_i's cluster (phi_i . sum_k phi_k). Compare
    :func:`iconlearn.learned.cluster_log_q`, normalised per cluster (k-means, TEMI, I-Con clustering)."""

    def __init__(self, exclude_self: bool = True):
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return (x @ y.T).clamp_min(1e-30).log()


def kernel_infonce_kernel(gamma: float = 1.0, temperature: float = 0.5, mixture: str | None = None,
                          gammas: Sequence[float] = (1.0, 2.0), temperatures: Sequence[float] | None = None,
                          weights: Sequence[float] | None = None, sizes: Sequence[int] | None = None,
                          normalize_inputs: bool = True, metric: str = "euclidean", p: float = 2.0) -> Kernel:
    """The kernel of Kernel-InfoNCE, one definition for the preset and the analyses:

    * ``mixture=None``: exp(-d^gamma / tau) on the L2-normalised embedding;
    * ``"sum"``: sum_m w_m exp(-d^gamma_m / tau_m) on the whole (normalised) embedding;
    * ``"concat"``: sum_m w_m exp(-d(x[S_m], y[S_m])^gamma_m / tau_m), the whole embedding L2-normalised
      once and then cut into the slices S_m (``sizes``; an even split by default), as the authors'
      projection head normalises its full output before their loss slices it.
    """
    if mixture is None:
        return ExponentialKernel(gamma, temperature, normalize_inputs, metric=metric, p=p)
    temps = [temperature] * len(gammas) if temperatures is None else list(temperatures)
    if mixture == "sum":
        return SumKernel([ExponentialKernel(g, t, normalize_inputs, metric=metric, p=p) for g, t in zip(gammas, temps)],
                         weights)
    if mixture == "concat":
        return ConcatSumKernel([ExponentialKernel(g, t, False, metric=metric, p=p) for g, t in zip(gammas, temps)],
                               sizes, normalize_inputs=normalize_inputs, weights=weights)
    raise ValueError(f"mixture must be None, 'sum' or 'concat', got {mixture!r}")

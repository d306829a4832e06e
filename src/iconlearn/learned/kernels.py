"""Learned distributions q(j|i) from kernels on embeddings (I-Con Table 1; Kernel-InfoNCE).

A kernel gives a log-affinity ``log k(z_i, z_j)`` for every anchor i and candidate j; the learned
distribution is its normalisation over the row's candidates,

    q(j|i) = k(z_i, z_j) / sum_{k candidate} k(z_i, z_k),

computed as a masked log-softmax (:func:`masked_log_softmax`). Candidates exclude the anchor itself when
the rows and columns are the same points (``k != i`` in Table 1).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core import candidate_mask
from ..distances import sq_distances


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

    def __call__(self, x: Tensor, y: Tensor | None = None, exclude: Tensor | None = None) -> Tensor:
        if exclude is None:
            exclude = self_exclusion(x, y, self.exclude_self)
        y = x if y is None else y
        dtype = compute_dtype(x, y)
        return masked_log_softmax(self.log_affinity(x.to(dtype), y.to(dtype)), exclude)

    def joint(self, x: Tensor) -> Tensor:
        """log Q over all ordered pairs i != j, normalised jointly (t-SNE's q_ij), as one (1 x N^2)
        row: the I-Con loss of a joint P against it is KL(P || Q)."""
        x = x.to(compute_dtype(x))
        logits = self.log_affinity(x, x)
        eye = torch.eye(x.shape[0], dtype=torch.bool, device=x.device)
        return masked_log_softmax(logits.masked_fill(eye, float("-inf")).reshape(1, -1))


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


class StudentTKernel(Kernel):
    """(1 + ||x - y||^2 / dof)^(-(dof + 1) / 2): t-SNE's heavy-tailed q (Cauchy at dof = 1; Theorem 2)."""

    def __init__(self, dof: float = 1.0, exclude_self: bool = True):
        self.dof = dof
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return -0.5 * (self.dof + 1.0) * torch.log1p(sq_distances(x, y) / self.dof)


class ExponentialKernel(Kernel):
    """exp(-||x - y||^gamma / tau), the exponential kernels of Kernel-InfoNCE.

    gamma = 2 is the Gaussian kernel, gamma = 1 the Laplacian. Embeddings are L2-normalised
    first by default, as in the Kernel-InfoNCE experiments.
    """

    def __init__(self, gamma: float = 1.0, temperature: float = 0.5, normalize_inputs: bool = True,
                 exclude_self: bool = True):
        self.gamma = gamma
        self.temperature = temperature
        self.normalize_inputs = normalize_inputs
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        if self.normalize_inputs:
            x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
        return -sq_distances(x, y).pow(self.gamma / 2.0) / self.temperature


class LaplacianKernel(ExponentialKernel):
    """exp(-||x - y|| / tau)."""

    def __init__(self, temperature: float = 0.5, normalize_inputs: bool = True, exclude_self: bool = True):
        super().__init__(1.0, temperature, normalize_inputs, exclude_self)


class SumKernel(Kernel):
    """Simple-sum mixture sum_k w_k k_k(x, y) of kernels on the same embedding (Kernel-InfoNCE)."""

    def __init__(self, kernels: Sequence[Kernel], weights: Sequence[float] | None = None, exclude_self: bool = True):
        self.kernels = list(kernels)
        self.log_weights = [math.log(w) for w in (weights or [1.0] * len(self.kernels))]
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        parts = [lw + k.log_affinity(x, y) for k, lw in zip(self.kernels, self.log_weights)]
        return torch.logsumexp(torch.stack(parts), dim=0)


class ConcatSumKernel(Kernel):
    """Concatenation-sum mixture sum_k k_k(x[slice_k], y[slice_k]): each kernel on its own slice of
    the embedding (Kernel-InfoNCE). ``sizes`` gives the slice widths; None splits evenly.
    ``normalize_inputs`` L2-normalises the whole embedding before it is sliced (give the slice
    kernels ``normalize_inputs=False`` then)."""

    def __init__(self, kernels: Sequence[Kernel], sizes: Sequence[int] | None = None, exclude_self: bool = True,
                 normalize_inputs: bool = False):
        self.kernels = list(kernels)
        self.sizes = None if sizes is None else list(sizes)
        self.exclude_self = exclude_self
        self.normalize_inputs = normalize_inputs

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        if self.normalize_inputs:  # the whole embedding onto the sphere, before slicing
            x, y = F.normalize(x, dim=1), F.normalize(y, dim=1)
        sizes = self.sizes
        if sizes is None:
            base, rest = divmod(x.shape[1], len(self.kernels))
            sizes = [base + (i < rest) for i in range(len(self.kernels))]
        if sum(sizes) != x.shape[1]:
            raise ValueError(f"slice sizes {sizes} do not add up to the embedding dimension {x.shape[1]}")
        xs, ys = torch.split(x, sizes, dim=1), torch.split(y, sizes, dim=1)
        parts = [k.log_affinity(a, b) for k, a, b in zip(self.kernels, xs, ys)]
        return torch.logsumexp(torch.stack(parts), dim=0)


class DotKernel(Kernel):
    """exp(x . y / tau) without normalisation: class prototypes / logits (cross-entropy, Corollary 1)."""

    def __init__(self, temperature: float = 1.0, exclude_self: bool = False):
        self.temperature = temperature
        self.exclude_self = exclude_self

    def log_affinity(self, x: Tensor, y: Tensor) -> Tensor:
        return (x @ y.T) / self.temperature

"""Kernel sums in O(N) by polynomial interpolation on a grid plus an FFT convolution
(FIt-SNE, Linderman et al. 2019; openTSNE's ``negative_gradient_method="fft"``), in torch so that
it runs on CPU and GPU alike and in 1, 2 or 3 dimensions.

For targets t_i, sources s_j with charges c_j (C of them) and a smooth translation-invariant
kernel K, :func:`kernel_sums` returns

    phi_i = sum_j K(||t_i - s_j||^2) c_j        (an N_t x C matrix).

How: the bounding box is cut into ``n_boxes`` intervals per dimension, each holding
``n_interp`` equispaced nodes; the nodes form one uniform grid of spacing h. Charges are spread
onto the nodes with Lagrange weights (the transpose of interpolation), the node potentials are
a discrete convolution of those charges with K evaluated at node offsets (a Toeplitz product,
done with a zero-padded FFT), and the potentials are interpolated back at the targets with the
same Lagrange weights. Cost O(N p^d + M^d log M) for M = n_boxes * p nodes per dimension.
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch import Tensor

from . import _numba as _fused_kernels

#: spread / interpolate with the compiled loops (:mod:`._numba`) on the CPU when numba is installed
#: (False forces the torch path, the reference)
FUSED = True


def _fused(sources: Tensor, targets: Tensor) -> bool:
    return (FUSED and _fused_kernels.HAVE_NUMBA and sources.device.type == "cpu" and targets.device.type == "cpu"
            and not (sources.requires_grad or targets.requires_grad))


def smooth_size(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (FFT lengths with large prime factors are slow)."""
    best = 1 << (n - 1).bit_length()
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            v = p35
            while v < n:
                v *= 2
            best = min(best, v)
            p35 *= 3
        p5 *= 5
    return best


def grid_boxes(width: float, dim: int, min_intervals: int = 50, ints_in_interval: float = 1.0,
               max_intervals: int | None = None) -> tuple[int, float]:
    """(intervals per side, interval length) of a grid covering ``width``: openTSNE's rule,
    max(min_intervals, floor(width / ints_in_interval)) equal intervals, capped (by default at 1,000
    per side in 2-D and 100 in 3-D, where the grid grows as the cube). (Intervals of exactly
    ``ints_in_interval``, which would let the kernel's FFT be reused between iterations, ended
    runs on Fashion-MNIST at a higher exact KL.)"""
    cap = max_intervals if max_intervals is not None else {1: 10**6, 2: 1000, 3: 100}.get(dim, 20)
    n_boxes = int(min(max(int(min_intervals), int(width / ints_in_interval)), max(cap, min_intervals)))
    return n_boxes, width / n_boxes


def _lagrange(t: Tensor, p: int) -> Tensor:
    """Lagrange basis on the p nodes (k + 1/2)/p of [0, 1], evaluated at t (any shape) -> (..., p)."""
    nodes = [(k + 0.5) / p for k in range(p)]
    out = []
    for k in range(p):
        w = torch.ones_like(t)
        for m in range(p):
            if m != k:
                w = w * (t - nodes[m]) / (nodes[k] - nodes[m])
        out.append(w)
    return torch.stack(out, -1)


class Grid:
    """An interpolation grid over a box [lo, lo + width]^d with ``n_boxes`` intervals per side."""

    def __init__(self, lo: Tensor, width, n_boxes: int, n_interp: int, dim: int):
        """``width``: a float, or a 0-d tensor on the device (no host round trip)."""
        self.lo, self.width, self.n_boxes, self.p, self.dim = lo, width, int(n_boxes), int(n_interp), dim
        self.box = self.width / self.n_boxes
        self.h = self.box / self.p
        self.m = self.n_boxes * self.p  # nodes per dimension
        self.size = smooth_size(2 * self.m)  # FFT length: >= 2M - 1 for a linear convolution

    @classmethod
    def covering(cls, y: Tensor, n_interp: int = 3, min_intervals: int = 50, ints_in_interval: float = 1.0,
                 max_intervals: int | None = None) -> "Grid":
        """openTSNE's choice: a square box around the points, cut as :func:`grid_size` says."""
        dim = y.shape[1]
        lo = y.detach().min()
        hi = y.detach().max()
        width = float(hi - lo)
        width = max(width, 1e-12) * (1 + 1e-6) + 1e-12
        n_boxes, box = grid_boxes(width, dim, min_intervals, ints_in_interval, max_intervals)
        return cls(lo.expand(dim).clone() if lo.ndim == 0 else lo, n_boxes * box, n_boxes, n_interp, dim)

    @classmethod
    def stretched(cls, y: Tensor, n_boxes: int, n_interp: int = 3) -> "Grid":
        """A grid of ``n_boxes`` intervals per side stretched over the points on their device: its
        box and spacing stay tensors, so building it reads nothing back to the host."""
        y = y.detach()
        lo = y.min()
        width = (y.max() - lo) * (1 + 1e-6) + 1e-12
        return cls(lo.expand(y.shape[1]).clone(), width, n_boxes, n_interp, y.shape[1])

    def weights(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Flat node indices (N x p^d) and interpolation weights (N x p^d) of the points x."""
        u = (x - self.lo) / self.box
        box = u.floor().clamp_(0, self.n_boxes - 1)
        t = u - box  # position inside its box, in [0, 1] for points inside the grid
        lag = _lagrange(t, self.p)  # (N, d, p)
        base = box.long() * self.p  # first node of the box, per dimension
        idx = torch.zeros(x.shape[0], 1, dtype=torch.long, device=x.device)
        w = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
        for d in range(self.dim):  # outer product over dimensions, row-major flat index
            node = base[:, d:d + 1] + torch.arange(self.p, device=x.device)  # (N, p)
            idx = (idx[:, :, None] * self.m + node[:, None, :]).reshape(x.shape[0], -1)
            w = (w[:, :, None] * lag[:, d, None, :]).reshape(x.shape[0], -1)
        return idx, w

    def kernel_fft(self, kernel: Callable[[Tensor], Tensor], dtype, device) -> Tensor:
        """rFFT of the kernel on node offsets, laid out circulantly on an L^d grid (L >= 2M):
        index k < M is offset k h, index L - k is offset -k h, the rest is zero (never read by a
        linear convolution of M nodes). K depends on squared offsets only: it is evaluated on the
        (M + 1)^d non-negative offsets (the last one zeroed) and read through folded indices."""
        m, size, d = self.m, self.size, self.dim
        r = torch.arange(size, device=device)
        r = torch.minimum(r, size - r).clamp_(max=m)  # m: outside the band
        off2 = (torch.arange(m + 1, device=device, dtype=dtype) * self.h) ** 2
        quad = kernel(sum(off2.view([-1 if a == k else 1 for a in range(d)]) for k in range(d)))
        for k in range(d):
            quad[(slice(None),) * k + (m,)] = 0.0
        table = quad[tuple(r.view([-1 if a == k else 1 for a in range(d)]) for k in range(d))]
        return torch.fft.rfftn(table, dim=tuple(range(d)))

    def convolve(self, node_charges: Tensor, kernel_hat: Tensor) -> Tensor:
        """Node potentials (M^d x C) from node charges (M^d x C)."""
        m, d, c = self.m, self.dim, node_charges.shape[1]
        grid = node_charges.T.reshape((c,) + (m,) * d)
        dims = tuple(range(1, d + 1))
        hat = torch.fft.rfftn(grid, s=(self.size,) * d, dim=dims)
        pot = torch.fft.irfftn(hat * kernel_hat, s=(self.size,) * d, dim=dims)
        pot = pot[(slice(None),) + (slice(0, m),) * d]
        return pot.reshape(c, -1).T


class DeviceGrids:
    """Grids for an optimisation on an accelerator without a host round trip in every iteration: the
    number of intervals (:func:`grid_boxes`) is read from the points' extent once every ``every``
    calls; in between, that many intervals are stretched over the points on the device
    (:meth:`Grid.stretched`), so the grid always covers them."""

    def __init__(self, n_interp: int = 3, min_intervals: int = 50, ints_in_interval: float = 1.0, every: int = 10):
        self.p, self.min_intervals, self.ints_in_interval, self.every = n_interp, min_intervals, ints_in_interval, every
        self.calls, self.n_boxes = 0, None

    def __call__(self, y: Tensor) -> Grid:
        if self.calls % self.every == 0:
            width = float(y.detach().max() - y.detach().min())  # the one read-back in `every` iterations
            self.n_boxes = grid_boxes(max(width, 1e-12), y.shape[1], self.min_intervals, self.ints_in_interval)[0]
        self.calls += 1
        return Grid.stretched(y, self.n_boxes, self.p)


def kernel_sums(targets: Tensor, sources: Tensor, charges: Tensor, kernel: Callable[[Tensor], Tensor],
                grid: Grid | None = None, n_interp: int = 3, min_intervals: int = 50,
                ints_in_interval: float = 1.0) -> Tensor:
    """phi_i = sum_j K(||t_i - s_j||^2) c_j for every target (self terms included when the targets
    are the sources). ``kernel`` maps squared distances to kernel values. Targets outside the
    grid (built around the sources and targets unless given) are extrapolated: keep them inside.
    """
    if grid is None:
        both = sources if targets is sources else torch.cat([sources, targets])
        grid = Grid.covering(both, n_interp, min_intervals, ints_in_interval)
    work = torch.float64 if sources.dtype == torch.float64 else torch.float32
    if _fused(sources, targets):
        lo, args = grid.lo.detach().cpu().double().numpy(), (float(grid.box), grid.n_boxes, grid.p, grid.m)
        src = sources.detach().double().numpy()
        c = charges.detach().double().numpy()
        node = np.zeros((c.shape[1], grid.m ** grid.dim))
        _fused_kernels.spread(src, c, lo, *args, node, 0, len(src))
        pot = grid.convolve(torch.from_numpy(node).T.to(work), grid.kernel_fft(kernel, work, "cpu"))
        tgt = src if targets is sources else targets.detach().double().numpy()
        out = np.empty((len(tgt), c.shape[1]))
        _fused_kernels.gather(tgt, pot.T.double().contiguous().numpy(), lo, *args, out, 0, len(tgt))
        return torch.from_numpy(out).to(work)
    s_idx, s_w = grid.weights(sources.to(work))
    if targets is sources:
        t_idx, t_w = s_idx, s_w
    else:
        t_idx, t_w = grid.weights(targets.to(work))
    c = charges.to(work)
    node = torch.zeros(grid.m ** grid.dim, c.shape[1], dtype=work, device=c.device)
    node.index_add_(0, s_idx.reshape(-1), (s_w[:, :, None] * c[:, None, :]).reshape(-1, c.shape[1]))
    pot = grid.convolve(node, grid.kernel_fft(kernel, work, c.device))
    return (pot[t_idx] * t_w[:, :, None]).sum(1)

"""t-SNE's optimisation on the CPU: the embedding and the optimiser's state as numpy arrays, each
iteration a few compiled kernels (:mod:`._numba`), as openTSNE does it.

One iteration: the repulsion by Barnes-Hut (van der Maaten 2014) or by FFT interpolation (FIt-SNE,
Linderman et al. 2019), the attraction over the sparse P, then the gains update. Three habits
make it fast:

* **locality**: the points are kept numbered in Morton (Z-curve) order of the embedding,
  renumbered every :data:`REORDER_EVERY` iterations, so that neighbours in P, points of one
  tree node and points of one grid box sit close in memory;
* **no needless work**: the FFT runs in float32 and skips transforming the zero padding and the
  part of the result that is never read;
* **threads that tolerate a busy machine**: the work is cut into tasks that ``n_threads``
  threads take from a shared counter; a waiting thread sleeps (no OpenMP spinning), and a
  thread that the operating system gives to another job only delays the task it holds. Below a
  few thousand points an iteration is too short to share, and one thread does it all
  (:func:`threads_for`).

The gradient is the one of :func:`iconlearn.tsne.gradients.tsne_gradient` (openTSNE's scale,
dC/dy / 4); the tests check the two against each other and against autograd of the exact loss.
"""
from __future__ import annotations

import itertools
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.fft

from . import _numba as K
from .affinities import SparseAffinities
from .interpolation import grid_boxes, smooth_size

#: points per thread below which a thread is not worth waking (an iteration takes < 1 ms there)
POINTS_PER_THREAD = 4000
#: iterations between renumberings of the points in Morton order of the embedding
REORDER_EVERY = 50
#: Morton-code bits per dimension of the Barnes-Hut tree (its deepest level), and points per leaf
TREE_LEVELS = {1: 60, 2: 30, 3: 20}
LEAF_SIZE = 8


def threads_for(n_points: int, n_jobs: int) -> int:
    """Threads worth using for an iteration over ``n_points`` points, at most ``n_jobs``."""
    return int(max(1, min(n_jobs, n_points // POINTS_PER_THREAD)))


class Tasks:
    """Run callables on ``n_threads`` threads (the caller is one of them), each taken from a shared
    counter when a thread is free: a thread slowed by other jobs takes fewer."""

    def __init__(self, n_threads: int):
        self.n_threads = max(1, int(n_threads))
        self._pool = ThreadPoolExecutor(self.n_threads - 1) if self.n_threads > 1 else None

    def run(self, tasks: list) -> list:
        """The tasks' results, in order; the first exception is raised once every thread has stopped."""
        if self._pool is None or len(tasks) == 1:
            return [t() for t in tasks]
        results, errors = [None] * len(tasks), []
        counter = itertools.count()

        def work():
            for i in iter(counter.__next__, None):
                if i >= len(tasks) or errors:
                    return
                try:
                    results[i] = tasks[i]()
                except BaseException as exc:  # noqa: BLE001  (re-raised below, in the caller)
                    errors.append(exc)

        waiting = [self._pool.submit(work) for _ in range(self.n_threads - 1)]
        work()
        for f in waiting:
            f.result()
        if errors:
            raise errors[0]
        return results

    def ranges(self, n: int, per_thread: int = 4) -> list[tuple[int, int]]:
        """[0, n) cut into ``per_thread`` ranges per thread (one range for one thread)."""
        k = 1 if self._pool is None else max(1, min(n, self.n_threads * per_thread))
        return [(n * c // k, n * (c + 1) // k) for c in range(k)]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def kernel_spectrum(kernel, m: int, size: int, h: float, dim: int) -> np.ndarray:
    """The FFT of K(||offset||^2) laid out circulantly on a ``size``^d grid (``size`` even): offsets
    k h at index k and -k h at index size - k for k < m, zero elsewhere, as ``scipy.fft.rfftn``
    would return it (size^(d-1) x (size/2 + 1)). K depends on squared offsets only, so the layout
    is even in every axis and its FFT is a type-I DCT of one quadrant: real, a quarter of the work
    in 2-D."""
    half = size // 2 + 1
    off2 = (np.arange(half) * h) ** 2
    quad = np.asarray(kernel(sum(off2.reshape([-1 if a == d else 1 for a in range(dim)]) for d in range(dim))),
                      dtype=np.float64)
    for d in range(dim):  # offsets of m nodes or more are never read by a linear convolution of m nodes
        quad[(slice(None),) * d + (slice(m, None),)] = 0.0
    spectrum = scipy.fft.dctn(quad, type=1)
    for d in range(dim - 1):  # all frequencies on the full axes (rfftn halves only the last one)
        spectrum = np.concatenate([spectrum, np.flip(spectrum, d).take(range(1, half - 1), d)], d)
    return spectrum


class FFTGrid:
    """Kernel sums on an interpolation grid (:mod:`.interpolation` in numpy): :meth:`place` puts the
    grid around the points (:func:`~iconlearn.tsne.interpolation.grid_boxes`) with the FFT of the
    kernel on its node offsets, :meth:`convolve` turns node charges into node potentials."""

    def __init__(self, kernel, dim: int, n_interp: int = 3, min_intervals: int = 50, ints_in_interval: float = 1.0,
                 workers: int = 1, dtype=np.float32):
        self.kernel, self.dim, self.p = kernel, dim, int(n_interp)
        self.min_intervals, self.ints_in_interval = int(min_intervals), float(ints_in_interval)
        self.workers, self.dtype = workers, dtype

    def place(self, y: np.ndarray) -> None:
        lo, hi = float(y.min()), float(y.max())
        width = max(hi - lo, 1e-12) * (1 + 1e-6) + 1e-12
        self.n_boxes, self.box = grid_boxes(width, self.dim, self.min_intervals, self.ints_in_interval)
        self.lo = np.full(self.dim, lo)
        self.m = self.n_boxes * self.p
        self.size = 2 * smooth_size(self.m)  # >= 2m - 1 for a linear convolution, and even
        self.kernel_hat = kernel_spectrum(self.kernel, self.m, self.size, self.box / self.p, self.dim).astype(self.dtype)

    def args(self) -> tuple:
        """The grid as the compiled spread / gather take it."""
        return self.lo, self.box, self.n_boxes, self.p, self.m

    def convolve(self, node: np.ndarray) -> np.ndarray:
        """Node potentials (C x M^d) from node charges (C x M^d): a linear convolution with the
        kernel by zero-padded FFTs that skip transforming the padding and the unread output."""
        m, size, dim, w = self.m, self.size, self.dim, self.workers
        h = scipy.fft.rfft(node.reshape((node.shape[0],) + (m,) * dim), n=size, axis=dim, workers=w)
        for ax in range(1, dim):
            h = scipy.fft.fft(h, n=size, axis=ax, workers=w)
        h *= self.kernel_hat
        for ax in range(1, dim):
            h = scipy.fft.ifft(h, axis=ax, workers=w)[(slice(None),) * ax + (slice(0, m),)]
        out = scipy.fft.irfft(h, n=size, axis=dim, workers=w)[..., :m]
        return np.ascontiguousarray(out).reshape(node.shape[0], -1)


class TSNEDescent:
    """Gradient descent on t-SNE's KL(P || Q) with Student-t Q, state in numpy (float64).

    ``method``: ``"bh"`` (Barnes-Hut with angle ``theta``; ``theta=0`` sums every pair exactly)
    or ``"fft"`` (``fft`` holds n_interp, min_intervals, ints_in_interval). :attr:`embedding`
    is the current embedding, in the points' original order.
    """

    def __init__(self, y0: np.ndarray, P: SparseAffinities, dof: float = 1.0, method: str = "bh",
                 theta: float = 0.5, fft: dict | None = None, n_threads: int = 1):
        self.y = np.array(y0, dtype=np.float64, order="C")
        n, d = self.y.shape
        self.crow = P.crow.cpu().numpy().astype(np.int64)
        self.cols = P.cols.cpu().numpy().astype(np.int64)
        self.vals = P.values.cpu().numpy().astype(np.float64)
        pos = self.vals[self.vals > 0]
        self.p_log_p, self.p_sum = float((pos * np.log(pos)).sum()), float(self.vals.sum())
        self.dof, self.e = float(dof), (float(dof) + 1.0) / 2.0
        self.method, self.theta = method, float(theta)
        self.update, self.gains = np.zeros_like(self.y), np.ones_like(self.y)
        self.attr, self.rep = np.empty_like(self.y), np.empty_like(self.y)
        self.perm = np.arange(n)  # position -> original index
        self.tasks = Tasks(n_threads)
        self.levels = TREE_LEVELS.get(d, max(1, 60 // d))
        self.iteration = 0
        if method == "fft":
            dof_, e_ = self.dof, self.e
            self.grid = FFTGrid(lambda d2: (1.0 + d2 / dof_) ** (-(e_ + 1.0)), d, workers=self.tasks.n_threads,
                                **(fft or {}))

    @property
    def embedding(self) -> np.ndarray:
        out = np.empty_like(self.y)
        out[self.perm] = self.y
        return out

    def _reorder(self) -> None:
        """Renumber the points in Morton order of the embedding (P, y and the optimiser's state)."""
        y = self.y
        lo = y.min(0)
        width = max(float((y.max(0) - lo).max()), 1e-12) * (1 + 1e-9)
        order = np.argsort(K.morton_codes(y, lo, width, min(self.levels, 16)), kind="stable")
        inv = np.empty_like(order)
        inv[order] = np.arange(len(order))
        self.crow, self.cols, self.vals = K.permute_csr(self.crow, self.cols, self.vals, order, inv)
        self.y, self.update, self.gains = self.y[order], self.update[order], self.gains[order]
        self.perm = self.perm[order]

    # ---------------------------------------------------------------- the two forces
    def _attraction_tasks(self, want_log: bool) -> list:
        args = (self.crow, self.cols, self.vals, self.y, 1.0 / self.dof, self.attr)
        return [lambda a=a, b=b: K.attraction(*args, a, b, want_log) for a, b in self.tasks.ranges(len(self.y))]

    def _bh(self, want_log: bool) -> tuple[float, float]:
        y = self.y
        lo = y.min(0)
        width = max(float((y.max(0) - lo).max()), 1e-12) * (1 + 1e-9) + 1e-12
        codes = K.morton_codes(y, lo, width, self.levels)
        order = np.argsort(codes, kind="stable")  # nearly sorted already (see _reorder): fast
        ys = y[order]
        tree = []  # built while other threads do the attraction
        build = lambda: tree.extend(K.build_tree(codes[order], ys, self.levels, LEAF_SIZE))  # noqa: E731
        s = sum(self.tasks.run([build] + self._attraction_tasks(want_log))[1:])
        rep = np.empty_like(ys)
        args = (*tree, ys, width, self.theta, 1.0 / self.dof, self.e, rep)
        z = sum(self.tasks.run([lambda a=a, b=b: K.bh_repulsion(*args, a, b) for a, b in self.tasks.ranges(len(ys))]))
        self.rep[order] = rep
        return z, s

    def _fft(self, want_log: bool) -> tuple[float, float]:
        y, n, d = self.y, self.y.shape[0], self.y.shape[1]
        grid = self.grid
        grid.place(y)
        charges = np.empty((n, d + 2))
        K.tsne_charges(y, charges)
        node = np.zeros((d + 2, grid.m ** d), grid.dtype)
        spread = lambda: K.spread(y, charges, *grid.args(), node, 0, n)  # noqa: E731  (while others attract)
        s = sum(self.tasks.run([spread] + self._attraction_tasks(want_log))[1:])
        pot = grid.convolve(node)
        inv_dof = 1.0 / self.dof

        def rows(a, b):
            K.gather(y, pot, *grid.args(), charges, a, b)  # charges now hold the potentials
            return K.fft_repulsion_rows(y, charges, inv_dof, self.rep, a, b)

        z = sum(self.tasks.run([lambda a=a, b=b: rows(a, b) for a, b in self.tasks.ranges(n)]))
        return z - n, s  # the self terms: w_ii = 1

    # ---------------------------------------------------------------- one iteration
    def step(self, exaggeration: float, learning_rate: float, momentum: float, max_step_norm: float | None = 5.0,
             max_grad_norm: float | None = None, want_kl: bool = False, min_gain: float = 0.01) -> float | None:
        """One gradient step; returns KL(P || Q) at the embedding before the step when ``want_kl``."""
        if self.iteration % REORDER_EVERY == 0:
            self._reorder()
        self.iteration += 1
        z, p_log_u = self._forces(want_kl)
        c = self.e / self.dof
        K.gains_step(self.y, self.attr, self.rep, c * exaggeration, c / z, self.update, self.gains,
                     float(learning_rate), float(momentum), min_gain, float(max_step_norm or 0.0),
                     float(max_grad_norm or 0.0), True)
        return self._kl(z, p_log_u) if want_kl else None

    def _forces(self, want_log: bool) -> tuple[float, float]:
        """(Z, sum p log u), with ``rep`` and ``attr`` filled."""
        z, p_log_u = self._bh(want_log) if self.method == "bh" else self._fft(want_log)
        return max(z, np.finfo(np.float64).tiny), p_log_u

    def _kl(self, z: float, p_log_u: float) -> float:
        """KL = sum p log p - sum p log w + log Z sum p, with log w = e log u."""
        return self.p_log_p - self.e * p_log_u + math.log(z) * self.p_sum

    def kl(self) -> float:
        """KL(P || Q) of the current embedding."""
        return self._kl(*self._forces(True))

    def close(self) -> None:
        self.tasks.close()

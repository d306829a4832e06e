"""Optional fused CPU kernels (numba, when installed), like openTSNE's Cython loops, instead of
several full-size torch temporaries: the attractive term (one pass over the CSR edges) and, for
2-D grids, the spreading of charges onto the interpolation nodes and the interpolation of the node
potentials back at the points (one pass over the points each). The torch paths in
:mod:`.gradients` and :mod:`.interpolation` compute the same sums and are the references in the
tests."""
from __future__ import annotations

import numpy as np

try:  # optional: numba ships with umap-learn
    import numba

    HAVE_NUMBA = True
except Exception:  # pragma: no cover - depends on the environment
    numba = None
    HAVE_NUMBA = False

if HAVE_NUMBA:

    @numba.njit(parallel=True, fastmath=True, cache=True)
    def _attraction_csr(crow, cols, vals, y, inv_dof, out, want_log):  # pragma: no cover - jitted
        n, d = y.shape
        logs = np.zeros(n)
        for i in numba.prange(n):
            acc0 = 0.0
            acc1 = 0.0
            acc2 = 0.0
            lg = 0.0
            for e in range(crow[i], crow[i + 1]):
                j = cols[e]
                d2 = 0.0
                for c in range(d):
                    t = y[i, c] - y[j, c]
                    d2 += t * t
                u = 1.0 / (1.0 + d2 * inv_dof)
                a = vals[e] * u
                if want_log:
                    lg += vals[e] * np.log(u)
                acc0 += a * (y[i, 0] - y[j, 0])
                if d > 1:
                    acc1 += a * (y[i, 1] - y[j, 1])
                if d > 2:
                    acc2 += a * (y[i, 2] - y[j, 2])
            out[i, 0] = acc0
            if d > 1:
                out[i, 1] = acc1
            if d > 2:
                out[i, 2] = acc2
            logs[i] = lg
        return logs.sum()


    @numba.njit(cache=True, fastmath=True)
    def _lagrange_2d(y, i, lo0, lo1, box, n_boxes, p, w0, w1):  # pragma: no cover - jitted
        """Box of point i per dimension and its Lagrange weights on the box's p nodes (k + 1/2) / p."""
        u0 = (y[i, 0] - lo0) / box
        u1 = (y[i, 1] - lo1) / box
        b0 = min(max(np.floor(u0), 0.0), n_boxes - 1.0)
        b1 = min(max(np.floor(u1), 0.0), n_boxes - 1.0)
        t0 = u0 - b0
        t1 = u1 - b1
        for k in range(p):
            a0 = 1.0
            a1 = 1.0
            xk = (k + 0.5) / p
            for m in range(p):
                if m != k:
                    xm = (m + 0.5) / p
                    a0 *= (t0 - xm) / (xk - xm)
                    a1 *= (t1 - xm) / (xk - xm)
            w0[k] = a0
            w1[k] = a1
        return int(b0) * p, int(b1) * p

    @numba.njit(cache=True, fastmath=True)
    def _spread_2d(y, charges, lo0, lo1, box, n_boxes, p, m, node):  # pragma: no cover - jitted
        w0 = np.empty(p)
        w1 = np.empty(p)
        for i in range(y.shape[0]):
            s0, s1 = _lagrange_2d(y, i, lo0, lo1, box, n_boxes, p, w0, w1)
            for a in range(p):
                for b in range(p):
                    w = w0[a] * w1[b]
                    row = (s0 + a) * m + s1 + b
                    for c in range(charges.shape[1]):
                        node[row, c] += w * charges[i, c]

    @numba.njit(parallel=True, cache=True, fastmath=True)
    def _gather_2d(y, pot, lo0, lo1, box, n_boxes, p, m, out):  # pragma: no cover - jitted
        for i in numba.prange(y.shape[0]):
            w0 = np.empty(p)
            w1 = np.empty(p)
            s0, s1 = _lagrange_2d(y, i, lo0, lo1, box, n_boxes, p, w0, w1)
            for c in range(pot.shape[1]):
                out[i, c] = 0.0
            for a in range(p):
                for b in range(p):
                    w = w0[a] * w1[b]
                    row = (s0 + a) * m + s1 + b
                    for c in range(pot.shape[1]):
                        out[i, c] += w * pot[row, c]


def spread_2d(y: np.ndarray, charges: np.ndarray, lo: np.ndarray, box: float, n_boxes: int, p: int, m: int) -> np.ndarray:
    """Node charges (m^2 x C): every point's charges spread onto its box's p x p nodes."""
    node = np.zeros((m * m, charges.shape[1]), dtype=y.dtype)
    _spread_2d(y, charges, float(lo[0]), float(lo[1]), float(box), int(n_boxes), int(p), int(m), node)
    return node


def gather_2d(y: np.ndarray, pot: np.ndarray, lo: np.ndarray, box: float, n_boxes: int, p: int, m: int) -> np.ndarray:
    """Potentials at the points (N x C), interpolated from the node potentials (m^2 x C)."""
    out = np.empty((y.shape[0], pot.shape[1]), dtype=y.dtype)
    _gather_2d(y, pot, float(lo[0]), float(lo[1]), float(box), int(n_boxes), int(p), int(m), out)
    return out


def attraction(crow: np.ndarray, cols: np.ndarray, vals: np.ndarray, y: np.ndarray, dof: float,
               want_log: bool) -> tuple[np.ndarray, float]:
    """(sum_j p_ij u_ij (y_i - y_j) for every i, sum_ij p_ij log u_ij) with u = 1 / (1 + d^2 / dof)."""
    out = np.empty_like(y)
    s = _attraction_csr(crow, cols, vals, y, 1.0 / dof, out, want_log)
    return out, float(s)

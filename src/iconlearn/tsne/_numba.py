"""Optional fused CPU kernel for the attractive term (numba, when installed): one pass over the
CSR edges like openTSNE's Cython loop, instead of several full-size torch temporaries. The
torch path in :mod:`.gradients` computes the same sums and is the reference in the tests."""
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


def attraction(crow: np.ndarray, cols: np.ndarray, vals: np.ndarray, y: np.ndarray, dof: float,
               want_log: bool) -> tuple[np.ndarray, float]:
    """(sum_j p_ij u_ij (y_i - y_j) for every i, sum_ij p_ij log u_ij) with u = 1 / (1 + d^2 / dof)."""
    out = np.empty_like(y)
    s = _attraction_csr(crow, cols, vals, y, 1.0 / dof, out, want_log)
    return out, float(s)

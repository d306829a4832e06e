"""The CPU kernels of t-SNE, compiled with numba (openTSNE's Cython loops, in Python syntax).

Every kernel is serial over a range of rows ``[start, stop)`` and releases the GIL (``nogil``):
:mod:`.cpu` runs the ranges of one iteration on its own small thread pool, so that no OpenMP
runtime spins on a machine that other jobs keep busy. The torch code in :mod:`.gradients` and
:mod:`.interpolation` computes the same sums; the tests hold the two together.

* :func:`attraction`: sum_j p_ij u_ij (y_i - y_j) over the sparse rows of P (and sum p log u);
* :func:`build_tree` and :func:`bh_repulsion`: the Barnes-Hut repulsion (van der Maaten 2014) on
  a linear 2^d-tree: points sorted by Morton code, nodes in depth-first order with a skip pointer,
  so a traversal needs no stack;
* :func:`spread` and :func:`gather`: charges onto the nodes of an interpolation grid and
  potentials back at the points (FIt-SNE, Linderman et al. 2019), in 1-3 dimensions;
* :func:`fft_repulsion_rows`: the t-SNE repulsion and the points' terms of Z from the four
  potentials (1, y, |y|^2);
* :func:`gains_step`: openTSNE's update (momentum, gains, step clipping), then re-centring.
"""
from __future__ import annotations

import numpy as np

try:  # a regular dependency; the torch path still runs without it
    import numba

    HAVE_NUMBA = True
except Exception:  # pragma: no cover - depends on the environment
    numba = None
    HAVE_NUMBA = False


#: fast-math without assuming that no value is infinite or NaN (the kernels compare with inf, and a
#: diverging embedding must stay visible as NaN)
_FASTMATH = {"nsz", "arcp", "contract", "afn", "reassoc"}


def _jit(fn):
    return numba.njit(nogil=True, cache=True, fastmath=_FASTMATH)(fn) if HAVE_NUMBA else fn


@_jit
def _kernel(d2, inv_dof, e):  # pragma: no cover - jitted
    """(u, w) = (1 / (1 + d^2 / nu), u^e): the Student-t kernel w and u, with e = (nu + 1) / 2."""
    u = 1.0 / (1.0 + d2 * inv_dof)
    return u, (u if e == 1.0 else u ** e)


@_jit
def attraction(crow, cols, vals, y, inv_dof, out, start, stop, want_log):  # pragma: no cover - jitted
    """out[i] = sum_j p_ij u_ij (y_i - y_j) for rows i in [start, stop); returns sum p_ij log u_ij.
    (1-3 dimensions, as three scalar lanes: unused ones stay zero and the compiler drops them.)"""
    d = y.shape[1]
    s = 0.0
    for i in range(start, stop):
        y0, y1, y2 = _lanes(y, i, d)
        a0 = a1 = a2 = 0.0
        for e in range(crow[i], crow[i + 1]):
            j = cols[e]
            t0, t1, t2 = _diff(y, j, d, y0, y1, y2)
            u = 1.0 / (1.0 + (t0 * t0 + t1 * t1 + t2 * t2) * inv_dof)
            a = vals[e] * u
            if want_log:
                s += vals[e] * np.log(u)
            a0 += a * t0
            a1 += a * t1
            a2 += a * t2
        _store(out, i, d, a0, a1, a2)
    return s


@_jit
def _lanes(y, i, d):  # pragma: no cover - jitted
    """Row i of a (N x d) array, d <= 3, as three scalars (zero past d)."""
    return y[i, 0], (y[i, 1] if d > 1 else 0.0), (y[i, 2] if d > 2 else 0.0)


@_jit
def _diff(y, j, d, y0, y1, y2):  # pragma: no cover - jitted
    """(y0, y1, y2) - row j of y, as three scalars."""
    return y0 - y[j, 0], (y1 - y[j, 1] if d > 1 else 0.0), (y2 - y[j, 2] if d > 2 else 0.0)


@_jit
def _store(out, i, d, a0, a1, a2):  # pragma: no cover - jitted
    out[i, 0] = a0
    if d > 1:
        out[i, 1] = a1
    if d > 2:
        out[i, 2] = a2


@_jit
def calibrate_rows(sq, target, tol, max_iter, out, start, stop):  # pragma: no cover - jitted
    """p(j|i) = exp(-beta_i d_ij) / Z_i over each row's neighbours, beta_i found by bisection so that
    the entropy is ``target`` nats (within ``tol``): the search of
    :func:`iconlearn.supervisory.gaussian.calibrate`, one row at a time."""
    k = sq.shape[1]
    d = np.empty(k)
    for i in range(start, stop):
        dmin = sq[i, 0]
        for j in range(k):
            dmin = min(dmin, sq[i, j])
        mean = 0.0
        for j in range(k):
            d[j] = sq[i, j] - dmin  # shifted for stability; p does not change
            mean += d[j]
        beta = 1.0 / max(mean / k, 1e-12)  # start near the row's own scale
        lo, hi = 0.0, -1.0  # hi < 0: no upper bound found yet
        for _ in range(max_iter + 1):
            z, dz = 0.0, 0.0
            for j in range(k):
                w = np.exp(-beta * d[j])
                z += w
                dz += w * d[j]
            diff = np.log(z) + beta * dz / z - target  # entropy - target
            if abs(diff) < tol:
                break
            if diff > 0:  # too flat: sharpen
                lo = beta
                beta = beta * 2.0 if hi < 0.0 else (lo + hi) / 2.0
            else:
                hi = beta
                beta = (lo + hi) / 2.0
        z = 0.0
        for j in range(k):
            out[i, j] = np.exp(-beta * d[j])
            z += out[i, j]
        for j in range(k):
            out[i, j] /= z


@_jit
def permute_csr(crow, cols, vals, perm, inv):  # pragma: no cover - jitted
    """The CSR matrix with rows and columns renumbered: new row r is old row perm[r], and old
    column j becomes inv[j]."""
    n = perm.shape[0]
    new_crow = np.empty_like(crow)
    new_crow[0] = 0
    for r in range(n):
        new_crow[r + 1] = new_crow[r] + crow[perm[r] + 1] - crow[perm[r]]
    new_cols = np.empty_like(cols)
    new_vals = np.empty_like(vals)
    for r in range(n):
        a = new_crow[r]
        for e in range(crow[perm[r]], crow[perm[r] + 1]):
            new_cols[a] = inv[cols[e]]
            new_vals[a] = vals[e]
            a += 1
    return new_crow, new_cols, new_vals


# ---------------------------------------------------------------- Barnes-Hut
@_jit
def morton_codes(y, lo, width, levels):  # pragma: no cover - jitted
    """The Morton (Z-order) code of every point on a 2^levels grid per side of the box [lo, lo + width]^d."""
    n, d = y.shape
    side = 1 << levels
    codes = np.empty(n, np.int64)
    for i in range(n):
        code = 0
        for c in range(d):
            u = (y[i, c] - lo[c]) / width * side
            q = min(int(u), side - 1) if u >= 0.0 else 0  # NaN: cell 0
            for b in range(levels):
                code |= ((q >> b) & 1) << (b * d + c)
        codes[i] = code
    return codes


@_jit
def build_tree(codes, ys, levels, leaf_size):  # pragma: no cover - jitted
    """The 2^d-tree of points ``ys`` sorted by their Morton ``codes``.

    Returns (start, end, level, skip, com) over the nodes in depth-first order: node k holds the
    sorted points [start[k], end[k]), its cell is 2^-level[k] of the box per side, its subtree
    ends before node skip[k] (a leaf: skip[k] = k + 1), and com[k] is its centre of mass. A node
    with at most ``leaf_size`` points, or at the finest level, is a leaf.
    """
    n, d = ys.shape
    fan = 1 << d
    cap = 2 * n // max(leaf_size, 1) + levels * fan + 16
    start = np.empty(cap, np.int64)
    end = np.empty(cap, np.int64)
    level = np.empty(cap, np.int64)
    parent = np.empty(cap, np.int64)
    stack = np.empty((levels * fan + 2, 4), np.int64)  # pending (start, end, level, parent)
    stack[0, 0], stack[0, 1], stack[0, 2], stack[0, 3] = 0, n, 0, -1
    top, n_nodes = 1, 0
    bounds = np.empty(fan + 1, np.int64)
    while top > 0:
        top -= 1
        a, b, lv, par = stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3]
        if n_nodes == cap:  # more nodes than foreseen (clustered points): grow the arrays
            cap *= 2
            start, end, level, parent = _grow(start, cap), _grow(end, cap), _grow(level, cap), _grow(parent, cap)
        k = n_nodes
        n_nodes += 1
        start[k], end[k], level[k], parent[k] = a, b, lv, par
        if b - a <= leaf_size or lv == levels:
            continue
        shift = d * (levels - lv - 1)  # the bits of this level: which child cell
        bounds[0], bounds[fan] = a, b
        for c in range(1, fan):  # first point of child c (binary search: children are contiguous)
            lo_, hi_ = bounds[c - 1], b
            while lo_ < hi_:
                mid = (lo_ + hi_) // 2
                if ((codes[mid] >> shift) & (fan - 1)) < c:
                    lo_ = mid + 1
                else:
                    hi_ = mid
            bounds[c] = lo_
        for c in range(fan - 1, -1, -1):  # pushed in reverse: the first child is created next
            if bounds[c + 1] > bounds[c]:
                stack[top, 0], stack[top, 1], stack[top, 2], stack[top, 3] = bounds[c], bounds[c + 1], lv + 1, k
                top += 1
    size = np.ones(n_nodes, np.int64)
    for k in range(n_nodes - 1, 0, -1):
        size[parent[k]] += size[k]
    skip = np.arange(n_nodes) + size
    csum = np.zeros((n + 1, d))
    for i in range(n):
        for c in range(d):
            csum[i + 1, c] = csum[i, c] + ys[i, c]
    com = np.empty((n_nodes, d))
    for k in range(n_nodes):
        for c in range(d):
            com[k, c] = (csum[end[k], c] - csum[start[k], c]) / (end[k] - start[k])
    return start[:n_nodes].copy(), end[:n_nodes].copy(), level[:n_nodes].copy(), skip, com


@_jit
def _grow(a, cap):  # pragma: no cover - jitted
    out = np.empty(cap, a.dtype)
    out[:a.shape[0]] = a
    return out


@_jit
def bh_repulsion(start, end, level, skip, com, ys, width, theta, inv_dof, e, out, first, stop):  # pragma: no cover
    """For the sorted points s in [first, stop): out[s] = sum_j u_sj w_sj (y_s - y_j) over all j != s,
    with a node's points replaced by its centre of mass when its cell width < theta x distance;
    returns their sum of w_sj (their part of Z). 1-3 dimensions, as scalar lanes."""
    d = ys.shape[1]
    n_nodes = start.shape[0]
    theta2 = theta * theta
    cell2 = np.empty(level.max() + 1 if n_nodes else 1)
    for lv in range(cell2.shape[0]):
        cell2[lv] = (width / (1 << lv)) ** 2
    z = 0.0
    for s in range(first, stop):
        y0, y1, y2 = _lanes(ys, s, d)
        a0 = a1 = a2 = 0.0
        k = 0
        while k < n_nodes:
            t0, t1, t2 = _diff(com, k, d, y0, y1, y2)
            d2 = t0 * t0 + t1 * t1 + t2 * t2
            if cell2[level[k]] < theta2 * d2:  # far enough: the node as one heavy point
                u, w = _kernel(d2, inv_dof, e)
                f = (end[k] - start[k]) * u * w
                z += (end[k] - start[k]) * w
                a0 += f * t0
                a1 += f * t1
                a2 += f * t2
                k = skip[k]
            elif skip[k] == k + 1:  # a near leaf: its points one by one
                for j in range(start[k], end[k]):
                    if j != s:
                        t0, t1, t2 = _diff(ys, j, d, y0, y1, y2)
                        u, w = _kernel(t0 * t0 + t1 * t1 + t2 * t2, inv_dof, e)
                        z += w
                        a0 += u * w * t0
                        a1 += u * w * t1
                        a2 += u * w * t2
                k += 1
            else:  # a near inner node: open it
                k += 1
        _store(out, s, d, a0, a1, a2)
    return z


# ---------------------------------------------------------------- interpolation grid
@_jit
def _lagrange_denominators(p):  # pragma: no cover - jitted
    denom = np.ones(p)
    for k in range(p):
        for m in range(p):
            if m != k:
                denom[k] *= (k - m) / p
    return denom


@_jit
def _nodes(y, i, lo, box, n_boxes, p, m, denom, lag, idx, w):  # pragma: no cover - jitted
    """The p^d nodes of point i's box (flat row-major indices into idx) and their interpolation
    weights (into w): products of the Lagrange weights on each side's nodes (k + 1/2) / p."""
    d = y.shape[1]
    for c in range(d):
        u = (y[i, c] - lo[c]) / box
        b = np.floor(u) if u >= 0.0 else 0.0  # NaN: box 0 (never an index outside the grid)
        b = min(b, n_boxes - 1.0)
        t = u - b
        for k in range(p):
            a = 1.0
            for j in range(p):
                if j != k:
                    a *= t - (j + 0.5) / p
            lag[c, k] = a / denom[k]
        lag[c, p] = int(b) * p  # the box's first node on this side
    for combo in range(p ** d):
        rest, flat, weight = combo, 0, 1.0
        for c in range(d):
            a = rest % p
            rest //= p
            flat = flat * m + int(lag[c, p]) + a
            weight *= lag[c, a]
        idx[combo] = flat
        w[combo] = weight


@_jit
def _scratch(d, p):  # pragma: no cover - jitted
    """Work arrays of :func:`_nodes` for d dimensions and p nodes per box side."""
    return _lagrange_denominators(p), np.empty((d, p + 1)), np.empty(p ** d, np.int64), np.empty(p ** d)


@_jit
def spread(y, charges, lo, box, n_boxes, p, m, node, start, stop):  # pragma: no cover - jitted
    """node[ch, flat node] += interpolation weight x charges[i, ch] for points i in [start, stop)."""
    denom, lag, idx, w = _scratch(y.shape[1], p)
    for i in range(start, stop):
        _nodes(y, i, lo, box, n_boxes, p, m, denom, lag, idx, w)
        for k in range(idx.shape[0]):
            for ch in range(charges.shape[1]):
                node[ch, idx[k]] += w[k] * charges[i, ch]


@_jit
def gather(y, pot, lo, box, n_boxes, p, m, out, start, stop):  # pragma: no cover - jitted
    """out[i, ch] = the node potentials pot[ch] interpolated at points i in [start, stop)."""
    denom, lag, idx, w = _scratch(y.shape[1], p)
    for i in range(start, stop):
        _nodes(y, i, lo, box, n_boxes, p, m, denom, lag, idx, w)
        for ch in range(pot.shape[0]):
            acc = 0.0
            for k in range(idx.shape[0]):
                acc += w[k] * pot[ch, idx[k]]
            out[i, ch] = acc


@_jit
def tsne_charges(y, out):  # pragma: no cover - jitted
    """The t-SNE charges (1, y, |y|^2) of every point."""
    n, d = y.shape
    for i in range(n):
        sq = 0.0
        out[i, 0] = 1.0
        for c in range(d):
            out[i, 1 + c] = y[i, c]
            sq += y[i, c] * y[i, c]
        out[i, d + 1] = sq


@_jit
def fft_repulsion_rows(y, phi, inv_dof, out, start, stop):  # pragma: no cover - jitted
    """From the potentials phi = (phi_1, phi_y, phi_|y|^2) of the kernel u w: out[i] = sum_j u w (y_i - y_j)
    and, returned, sum_i sum_j w_ij over the rows (self terms included: 1 per row)."""
    d = y.shape[1]
    z = 0.0
    for i in range(start, stop):
        sq, dot = 0.0, 0.0
        for c in range(d):
            sq += y[i, c] * y[i, c]
            dot += y[i, c] * phi[i, 1 + c]
            out[i, c] = y[i, c] * phi[i, 0] - phi[i, 1 + c]
        # w = u w (1 + d^2 / nu), d^2 = |y_i|^2 - 2 y_i.y_j + |y_j|^2
        z += (1.0 + sq * inv_dof) * phi[i, 0] - 2.0 * inv_dof * dot + inv_dof * phi[i, d + 1]
    return z


# ---------------------------------------------------------------- the update
@_jit
def gains_step(y, attr, rep, scale_attr, scale_rep, update, gains, learning_rate, momentum, min_gain,
               max_step_norm, max_grad_norm, recenter):  # pragma: no cover - jitted
    """grad = scale_attr x attr - scale_rep x rep, then openTSNE's step: gains +0.2 where the gradient's
    sign differs from the last update's, x0.8 elsewhere, floored at min_gain; update = momentum x
    update - learning_rate x gains x grad, clipped to max_step_norm per point (<= 0: no clipping);
    y += update; y re-centred. ``max_grad_norm`` > 0 clips each point's gradient first."""
    n, d = y.shape
    mean = np.zeros(d)
    g = np.empty(d)
    for i in range(n):
        gn = 0.0
        for c in range(d):
            g[c] = scale_attr * attr[i, c] - scale_rep * rep[i, c]
            gn += g[c] * g[c]
        f = max_grad_norm / (np.sqrt(gn) + 1e-6)  # openTSNE's clipping
        if max_grad_norm > 0.0 and f < 1.0:
            for c in range(d):
                g[c] *= f
        un = 0.0
        for c in range(d):
            if np.sign(update[i, c]) != np.sign(g[c]):
                gains[i, c] += 0.2
            else:
                gains[i, c] = max(gains[i, c] * 0.8, min_gain)
            update[i, c] = momentum * update[i, c] - learning_rate * gains[i, c] * g[c]
            un += update[i, c] * update[i, c]
        if max_step_norm > 0.0 and un > max_step_norm * max_step_norm:
            f = max_step_norm / np.sqrt(un)
            for c in range(d):
                update[i, c] *= f
        for c in range(d):
            y[i, c] += update[i, c]
            mean[c] += y[i, c]
    if recenter:
        for c in range(d):
            mean[c] /= n
        for i in range(n):
            for c in range(d):
                y[i, c] -= mean[c]

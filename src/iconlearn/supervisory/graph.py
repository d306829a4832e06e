"""Supervisory distributions from graphs: kNN neighbours, kNN walks, weighted graphs with degrees.

I-Con section 3.3 (neighbour propagation): with P the row-stochastic kNN graph,

    P_s  ∝ P + P^2 + ... + P^s            (walks of length <= s)
    P_U  ∝ 1[P + P^2 + ... + P^s > 0]      (binarised: uniform over reachable points)

Dataset-level targets are kept as :class:`SparseRows` over the N dataset columns (at most
k + k^2 + ... + k^s entries a row), and :func:`restrict_to_batch` turns the rows of a batch into
targets over that batch's columns, renormalised, without building an N x N or B x B dense matrix.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from ..cluster_likelihood import cluster_log_q
from ..core import SparseRows


def knn_matrix(neighbors: np.ndarray | Tensor, n: int | None = None) -> sp.csr_matrix:
    """Row-stochastic kNN graph P (N x N, CSR): p(j|i) = 1/k for the k neighbours of i."""
    nb = neighbors.cpu().numpy() if isinstance(neighbors, Tensor) else np.asarray(neighbors)
    rows, k = nb.shape
    n = rows if n is None else n
    data = np.full(rows * k, 1.0 / k)
    return sp.csr_matrix((data, (np.repeat(np.arange(rows), k), nb.ravel())), shape=(rows, n))


def walk_matrix(P: sp.csr_matrix, steps: int = 1, binarize: bool = False, exclude_self: bool = True) -> sp.csr_matrix:
    """Neighbour propagation: rows of P + P^2 + ... + P^steps, renormalised (section 3.3).

    ``binarize`` gives the uniform form over every point reachable in <= steps. The anchor itself
    (reachable by a walk there and back) is dropped when ``exclude_self``.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    total, power = P.copy(), P
    for _ in range(steps - 1):
        power = power @ P
        total = total + power
    total = sp.csr_matrix(total)
    if exclude_self:
        total.setdiag(0)
        total.eliminate_zeros()
    if binarize:
        total.data[:] = 1.0
    sums = np.asarray(total.sum(1)).ravel()
    sums[sums == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / sums) @ total)


def graph_matrix(weights: sp.spmatrix | np.ndarray) -> sp.csr_matrix:
    """Row-normalised transition matrix of an arbitrary non-negative weighted graph W: w_ij / d_i."""
    W = sp.csr_matrix(weights, dtype=np.float64)
    if W.nnz and W.data.min() < 0:
        raise ValueError("graph weights must be non-negative")
    d = degrees(W)
    d[d == 0] = 1.0
    return sp.csr_matrix(sp.diags(1.0 / d) @ W)


def degrees(weights: sp.spmatrix | np.ndarray) -> np.ndarray:
    """Node degrees d_i = sum_j w_ij (used by normalized cuts, Theorem 8)."""
    return np.asarray(sp.csr_matrix(weights).sum(1), dtype=np.float64).ravel()


def rows_of(P: sp.csr_matrix, rows: np.ndarray | Tensor | None = None, device=None) -> SparseRows:
    """Selected rows of a sparse row-stochastic matrix as padded :class:`SparseRows` over N columns."""
    sub = P if rows is None else P[np.asarray(rows.cpu() if isinstance(rows, Tensor) else rows)]
    sub = sp.csr_matrix(sub)
    counts = np.diff(sub.indptr)
    k = max(int(counts.max()) if counts.size else 0, 1)
    values = np.zeros((sub.shape[0], k))
    indices = np.zeros((sub.shape[0], k), dtype=np.int64)
    pos = np.arange(sub.nnz) - np.repeat(sub.indptr[:-1], counts)
    r = np.repeat(np.arange(sub.shape[0]), counts)
    values[r, pos] = sub.data
    indices[r, pos] = sub.indices
    dtype = torch.get_default_dtype()
    return SparseRows(torch.as_tensor(values, dtype=dtype, device=device), torch.as_tensor(indices, device=device))


def restrict_to_batch(P: sp.csr_matrix, anchor_ids: np.ndarray | Tensor, batch_ids: np.ndarray | Tensor,
                      exclude_positions: np.ndarray | Tensor | None = None, device=None) -> SparseRows:
    """p over the columns of a batch: row r of P for anchor ``anchor_ids[r]``, kept only on the
    dataset points present in the batch (``batch_ids``, repeats allowed: a point seen in several
    views shares its mass among them) and renormalised.

    Rows whose neighbours are all absent from the batch come out all-zero (callers drop them).
    ``exclude_positions`` (B,) removes one batch column per row (the anchor's own position).
    """
    a = np.asarray(anchor_ids.cpu() if isinstance(anchor_ids, Tensor) else anchor_ids)
    b = np.asarray(batch_ids.cpu() if isinstance(batch_ids, Tensor) else batch_ids)
    # membership matrix M (N x B): M[d, c] = 1 if batch column c is dataset point d
    member = sp.csr_matrix((np.ones(len(b)), (b, np.arange(len(b)))), shape=(P.shape[1], len(b)))
    counts = np.asarray(member.sum(1)).ravel()
    counts[counts == 0] = 1.0
    sub = sp.csr_matrix(P[a] @ sp.diags(1.0 / counts) @ member)
    if exclude_positions is not None:  # drop entry (r, exclude_positions[r]) of each row, O(nnz)
        ex = np.asarray(exclude_positions.cpu() if isinstance(exclude_positions, Tensor) else exclude_positions)
        coo = sub.tocoo()
        keep = coo.col != ex[coo.row]
        sub = sp.csr_matrix((coo.data[keep], (coo.row[keep], coo.col[keep])), shape=sub.shape)
    sums = np.asarray(sub.sum(1)).ravel()
    sums[sums == 0] = 1.0
    return rows_of(sp.csr_matrix(sp.diags(1.0 / sums) @ sub), None, device)


def cluster_targets(assignments: Tensor, assignments_ref: Tensor | None = None, exclude_self: bool = False) -> Tensor:
    """Cluster-induced p(j|i) = sum_c phi_ic phi_jc / sum_k phi_kc from (soft or one-hot) assignments
    (the supervisory side of probabilistic k-means in Table 1). Returns dense probabilities."""
    return cluster_log_q(assignments, assignments_ref, exclude_self=exclude_self).exp()

"""The supervisory side of SNE / t-SNE (I-Con Theorems 1-2): perplexity-calibrated Gaussians on
the k = 3 x perplexity nearest neighbours, stored sparse.

* conditional p(j|i): :func:`iconlearn.supervisory.gaussian.calibrate` on kNN distances (SNE);
* joint p_ij = (p(j|i) + p(i|j)) / 2N (t-SNE), via :func:`iconlearn.supervisory.gaussian.symmetrize`;
* affinities of new points to a frozen reference set (``transform``).

Everything is a :class:`SparseAffinities` (row-sorted COO = CSR), never an N x N matrix.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..core import SparseRows
from ..neighbors import knn
from ..supervisory.gaussian import calibrate, symmetrize


@dataclass
class SparseAffinities:
    """p as (rows, cols, values) sorted by row, ``n_rows`` x ``n_cols``; ``crow`` is the CSR row pointer."""

    rows: Tensor
    cols: Tensor
    values: Tensor
    n_rows: int
    n_cols: int
    _csr_np: tuple | None = None

    def csr_numpy(self) -> tuple:
        """(crow, cols, values) as numpy arrays (cached), for the fused CPU kernel."""
        if self._csr_np is None or self._csr_np[2].dtype != self.values.cpu().numpy().dtype:
            self._csr_np = (self.crow.cpu().numpy(), self.cols.cpu().numpy(), self.values.cpu().numpy())
        return self._csr_np

    @property
    def crow(self) -> Tensor:
        counts = torch.bincount(self.rows, minlength=self.n_rows)
        return torch.cat([counts.new_zeros(1), counts.cumsum(0)])

    def to(self, device=None, dtype=None) -> "SparseAffinities":
        return SparseAffinities(self.rows.to(device), self.cols.to(device), self.values.to(device, dtype),
                                self.n_rows, self.n_cols)

    def to_dense(self) -> Tensor:
        out = torch.zeros(self.n_rows, self.n_cols, dtype=self.values.dtype, device=self.values.device)
        out.index_put_((self.rows, self.cols), self.values, accumulate=True)
        return out

    @classmethod
    def from_rows(cls, p: SparseRows, n_cols: int) -> "SparseAffinities":
        n, k = p.values.shape
        rows = torch.arange(n, device=p.values.device).repeat_interleave(k)
        return cls(rows, p.indices.reshape(-1).long(), p.values.reshape(-1), n, n_cols)


def n_neighbors_for(perplexity: float, n: int) -> int:
    """openTSNE's k = min(n - 1, floor(3 x perplexity))."""
    return int(min(n - 1, max(1, int(3 * perplexity))))


def check_perplexity(perplexity, n: int) -> float:
    try:
        value = float(perplexity)
    except (TypeError, ValueError):
        raise ValueError(f"perplexity must be a number, got {perplexity!r}") from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"perplexity must be positive, got {perplexity!r}")
    if value >= n - 1:
        raise ValueError(f"perplexity must be smaller than the number of points minus one "
                         f"(n={n}): got {perplexity}; typical values are 5-50")
    return value


def nearest_neighbors(X, k: int, metric: str = "euclidean", device=None) -> tuple[Tensor, Tensor]:
    """Squared distances and indices (N x k) of the k nearest other points (faiss or chunked torch)."""
    m = "cosine" if metric == "cosine" else "sqeuclidean"
    backend = "torch" if (device is not None and torch.device(device).type != "cpu") else "auto"
    d, i = knn(X, k, metric=m, backend=backend, device=device)
    d = torch.as_tensor(d, dtype=torch.float64)
    if metric == "cosine":
        d = d.clamp_min(0)  # 1 - cos is half the squared distance of unit vectors; calibration absorbs the scale
    return d.clamp_min(0), torch.as_tensor(i, dtype=torch.long)


def conditional_affinities(sq_dist: Tensor, indices: Tensor, perplexity: float, n_cols: int) -> SparseAffinities:
    """p(j|i) over the given neighbours (rows sum to 1): SNE's supervisory distribution."""
    perp = min(perplexity, sq_dist.shape[1] - 1e-3)  # a full row cannot reach perplexity = k
    P, _ = calibrate(sq_dist, perp)
    return SparseAffinities.from_rows(SparseRows(P, indices), n_cols)


def joint_affinities(sq_dist: Tensor, indices: Tensor, perplexity: float) -> SparseAffinities:
    """t-SNE's symmetric p_ij = (p(j|i) + p(i|j)) / 2N, summing to 1 over all pairs."""
    n = sq_dist.shape[0]
    perp = min(perplexity, sq_dist.shape[1] - 1e-3)
    P, _ = calibrate(sq_dist, perp)
    idx, vals = symmetrize(SparseRows(P, indices), n)
    return SparseAffinities(idx[0].contiguous(), idx[1].contiguous(), vals, n, n)


def from_matrix(P, symmetric: bool) -> SparseAffinities:
    """Precomputed affinities: a dense array / tensor or a scipy sparse matrix (N x N), non-negative.

    For t-SNE (``symmetric``) P is symmetrised as (P + P^T) and normalised to sum 1; for SNE every
    row is normalised to sum 1. The diagonal is dropped.
    """
    import scipy.sparse as sp

    if isinstance(P, Tensor):
        P = P.detach().cpu().numpy()
    M = sp.coo_matrix(P, dtype=np.float64) if not sp.issparse(P) else P.tocoo().astype(np.float64)
    if M.shape[0] != M.shape[1]:
        raise ValueError(f"precomputed affinities must be square (N x N), got shape {M.shape}")
    if M.nnz and (not np.isfinite(M.data).all() or (M.data < 0).any()):
        raise ValueError("precomputed affinities must be finite and non-negative")
    M = M.tocsr()
    M.setdiag(0)
    M.eliminate_zeros()
    if symmetric:
        M = M + M.T
        total = M.sum()
        if total <= 0:
            raise ValueError("precomputed affinities are all zero off the diagonal")
        M = M / total
    else:
        sums = np.asarray(M.sum(1)).ravel()
        if (sums <= 0).any():
            raise ValueError(f"{int((sums <= 0).sum())} rows of the precomputed affinities have no mass off the diagonal")
        M = sp.diags(1.0 / sums) @ M
    M = M.tocoo()
    order = np.lexsort((M.col, M.row))
    return SparseAffinities(torch.as_tensor(M.row[order], dtype=torch.long), torch.as_tensor(M.col[order], dtype=torch.long),
                            torch.as_tensor(M.data[order]), M.shape[0], M.shape[1])


def reference_affinities(X_new, X_ref, perplexity: float, k: int, metric: str = "euclidean") -> SparseAffinities:
    """p(j|i) of new points i over their k nearest reference points j (openTSNE's transform: the
    distances of the kNN index, squared for the Gaussian)."""
    d, i = knn(np.asarray(X_new, np.float32), k, y=np.asarray(X_ref, np.float32), metric=metric)
    d = torch.as_tensor(d, dtype=torch.float64)
    sq = d if metric == "cosine" else d ** 2
    return conditional_affinities(sq, torch.as_tensor(i, dtype=torch.long), perplexity, len(X_ref))

"""k nearest neighbours for the whole package: faiss when installed, chunked torch otherwise.

One function serves both queries (openTSNE's ``nearest_neighbors``, TorchDR's
``pairwise_distances(X, Y, k)``):

* ``knn(x, k)``: the k nearest *other* rows of x (the query point itself is excluded), e.g. the
  kNN graph of a data set;
* ``knn(x, k, y=ref)``: the k nearest rows of ``ref`` for every row of x, e.g. new points against
  a fitted reference set, or test points against training points.

Neither path builds an N x N matrix: faiss searches an exact flat index, the torch path compares
chunks of queries against all points (:func:`iconlearn.distances.sq_distances`) and keeps their
top k; scipy sparse input is searched the same way, in chunks of sparse products.

An exact search costs N x M x D; above ``EXACT_MAX_POINTS`` points searched (``approximate="auto"``)
faiss searches an inverted-file index instead (``IndexIVFFlat``: about 4 sqrt(M) k-means cells,
the ``IVF_PROBES`` nearest cells of each query searched exactly), so a million points take tens of
minutes on two cores instead of many hours.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F

from . import _validation as V
from .distances import chunk_rows, sq_distances

try:  # optional dependency
    import faiss  # type: ignore

    HAVE_FAISS = True
except Exception:  # pragma: no cover - depends on the environment
    faiss = None
    HAVE_FAISS = False

__all__ = ["HAVE_FAISS", "METRICS", "knn"]

METRICS = ("cosine", "sqeuclidean", "euclidean")
EXACT_MAX_POINTS = 200_000  # above this many points searched, approximate="auto" uses the IVF index
IVF_PROBES = 32  # cells searched per query by the IVF index


@torch.no_grad()
def _knn_torch(q: torch.Tensor, r: torch.Tensor | None, k: int, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Top k of chunks of queries q against the points r (r None: q itself, self excluded)."""
    exclude_self = r is None
    if metric == "cosine":
        q = F.normalize(q, dim=1)
        r = q if exclude_self else F.normalize(r, dim=1)
    elif exclude_self:
        r = q
    out_d = torch.empty(q.shape[0], k, dtype=q.dtype, device=q.device)
    out_i = torch.empty(q.shape[0], k, dtype=torch.long, device=q.device)
    step = chunk_rows(r.shape[0])
    for start in range(0, q.shape[0], step):
        qc = q[start:start + step]
        d = 1.0 - qc @ r.T if metric == "cosine" else sq_distances(qc, r, floor=0.0)
        if exclude_self:
            rows = torch.arange(qc.shape[0], device=q.device)
            d[rows, rows + start] = float("inf")
        out_d[start:start + step], out_i[start:start + step] = torch.topk(d, k, dim=1, largest=False)
    return (out_d.sqrt() if metric == "euclidean" else out_d), out_i


def _faiss_index(r: np.ndarray, metric: str, approximate: bool):
    """A faiss index holding the rows of r: exact (flat), or an inverted file of flat cells."""
    flat = faiss.IndexFlatIP(r.shape[1]) if metric == "cosine" else faiss.IndexFlatL2(r.shape[1])
    if not approximate:
        index = flat
    else:
        n_cells = int(np.clip(4 * np.sqrt(len(r)), 1, len(r) // 39))  # faiss wants >= 39 training points a cell
        kind = faiss.METRIC_INNER_PRODUCT if metric == "cosine" else faiss.METRIC_L2
        index = faiss.IndexIVFFlat(flat, r.shape[1], n_cells, kind)
        index.cp.seed = 1234  # the cells' k-means: deterministic
        sample = np.random.default_rng(0).choice(len(r), min(len(r), 64 * n_cells), replace=False)
        index.train(r[np.sort(sample)])
        index.nprobe = min(IVF_PROBES, n_cells)
    index.add(r)
    return index


def _knn_faiss(q: np.ndarray, r: np.ndarray | None, k: int, metric: str,
               approximate: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The same with a faiss index (inner product on unit vectors for cosine, L2 otherwise)."""
    exclude_self = r is None

    def prepare(x):
        x = np.ascontiguousarray(x, dtype=np.float32)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12) if metric == "cosine" else x

    q = prepare(q)
    r = q if exclude_self else prepare(r)
    index = _faiss_index(r, metric, approximate)
    dist, idx = index.search(q, k + exclude_self)
    if exclude_self:  # drop self: it is usually first, but exact duplicates may come in another order
        n = q.shape[0]
        self_pos = idx == np.arange(n)[:, None]
        missing = ~self_pos.any(1)
        self_pos[missing, -1] = True  # self not among k+1 (many duplicates): drop the last one
        keep = ~self_pos
        idx, dist = idx[keep].reshape(n, k), dist[keep].reshape(n, k)
    if metric == "cosine":
        return 1.0 - dist, idx
    return (np.sqrt(np.maximum(dist, 0)) if metric == "euclidean" else dist), idx


def _knn_sparse(q, r, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """The same for scipy sparse rows: chunks of queries times all points, top k of each chunk."""
    exclude_self = r is None

    def prepare(x):
        x = sp.csr_matrix(x, dtype=np.float64)
        if metric == "cosine":
            x = sp.diags(1.0 / np.maximum(np.sqrt(np.asarray(x.multiply(x).sum(1)).ravel()), 1e-12)) @ x
        return x.tocsr(), np.asarray(x.multiply(x).sum(1)).ravel()

    q, q_sq = prepare(q)
    r, r_sq = (q, q_sq) if exclude_self else prepare(r)
    out_d, out_i = np.empty((q.shape[0], k)), np.empty((q.shape[0], k), np.int64)
    step = max(1, 2**24 // max(r.shape[0], 1))
    for start in range(0, q.shape[0], step):
        g = (q[start:start + step] @ r.T).toarray()
        d = 1.0 - g if metric == "cosine" else np.maximum(q_sq[start:start + step, None] + r_sq[None] - 2 * g, 0.0)
        if exclude_self:
            rows = np.arange(d.shape[0])
            d[rows, rows + start] = np.inf
        idx = np.argpartition(d, k - 1, axis=1)[:, :k]
        dist = np.take_along_axis(d, idx, 1)
        order = np.argsort(dist, axis=1, kind="stable")
        out_d[start:start + step], out_i[start:start + step] = np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1)
    return (np.sqrt(out_d) if metric == "euclidean" else out_d), out_i


def _numpy(a) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def knn(x, k: int, y=None, metric: str = "cosine", backend: str = "auto", device=None,
        approximate: bool | str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """The k nearest neighbours of every row of x: among the other rows of x, or among the rows of y.

    Args:
        x: (N x D) queries, array, tensor or scipy sparse matrix.
        k: neighbours per query: 1 <= k < N without y, 1 <= k <= len(y) with it.
        y: (M x D) points to search; None searches x itself, each row's own index excluded.
        metric: ``"cosine"`` (distance 1 - cos), ``"sqeuclidean"`` or ``"euclidean"``.
        backend: ``"faiss"``, ``"torch"`` or ``"auto"`` (faiss when installed and the inputs are
            on the CPU).
        device: where the torch path computes (default: where the inputs are).
        approximate: ``True`` searches faiss's inverted-file index (needs faiss), ``False`` is
            exact, ``"auto"`` is approximate above ``EXACT_MAX_POINTS`` points searched when faiss
            is the backend.

    Returns:
        (distances, indices), both (N x k) numpy arrays, nearest first; indices are rows of y
        (of x without y).
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    V.check_int(k, "k", 1)
    n = x.shape[0]
    if y is None and k >= n:
        raise ValueError(f"k must be smaller than the number of points: k={k}, n={n}")
    if y is not None:
        if k > y.shape[0]:
            raise ValueError(f"k={k} is larger than the number of reference points ({y.shape[0]})")
        if y.shape[1] != x.shape[1]:
            raise ValueError(f"the queries have {x.shape[1]} features but the points searched have {y.shape[1]}")
    if sp.issparse(x) or sp.issparse(y):
        return _knn_sparse(x, y, k, metric)
    on_gpu = any(isinstance(a, torch.Tensor) and a.is_cuda for a in (x, y))
    if backend == "auto":
        backend = "faiss" if HAVE_FAISS and not on_gpu else "torch"
    if approximate not in (True, False, "auto"):
        raise ValueError(f"approximate must be True, False or 'auto', got {approximate!r}")
    if approximate is True and backend == "torch":
        raise ValueError("approximate=True searches faiss's IVF index; backend='torch' is exact only")
    if approximate is True and backend == "auto":
        backend = "faiss"
    if backend == "faiss":
        if not HAVE_FAISS:
            raise ValueError("backend='faiss' needs faiss: pip install faiss-cpu (or iconlearn[faiss])")
        n_searched = n if y is None else y.shape[0]
        approx = approximate is True or (approximate == "auto" and n_searched > EXACT_MAX_POINTS)
        return _knn_faiss(_numpy(x), None if y is None else _numpy(y), k, metric, approximate=approx)
    if backend != "torch":
        raise ValueError(f"backend must be 'auto', 'faiss' or 'torch', got {backend!r}")

    def as_tensor(a):
        t = a if isinstance(a, torch.Tensor) else torch.as_tensor(np.asarray(a, dtype=np.float32))
        return (t if device is None else t.to(device)).float()

    dist, idx = _knn_torch(as_tensor(x), None if y is None else as_tensor(y), k, metric)
    return dist.cpu().numpy(), idx.cpu().numpy()

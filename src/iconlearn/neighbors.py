"""Dataset-level k nearest neighbours: faiss when installed, chunked torch otherwise.

Neither path builds an N x N matrix: the torch path compares chunks of queries against all
points and keeps a running top-k. The query point itself is excluded.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from . import _validation as V

try:  # optional dependency
    import faiss  # type: ignore

    HAVE_FAISS = True
except Exception:  # pragma: no cover - depends on the environment
    faiss = None
    HAVE_FAISS = False


def _chunk_rows(n: int, d: int, budget: int = 2**26) -> int:
    return max(1, min(n, budget // max(n, 1), 4096))


@torch.no_grad()
def _knn_torch(x: torch.Tensor, k: int, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    n = x.shape[0]
    if metric == "cosine":
        x = F.normalize(x, dim=1)
    sq = (x * x).sum(1)
    out_d = torch.empty(n, k, dtype=x.dtype, device=x.device)
    out_i = torch.empty(n, k, dtype=torch.long, device=x.device)
    step = _chunk_rows(n, x.shape[1])
    for start in range(0, n, step):
        q = x[start:start + step]
        if metric == "cosine":
            d = 1.0 - q @ x.T
        else:
            d = (sq[start:start + step, None] + sq[None, :] - 2.0 * (q @ x.T)).clamp_min(0)
        rows = torch.arange(q.shape[0], device=x.device)
        d[rows, rows + start] = float("inf")  # exclude self
        dist, idx = torch.topk(d, k, dim=1, largest=False)
        out_d[start:start + step], out_i[start:start + step] = dist, idx
    return out_d, out_i


def _knn_faiss(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        index = faiss.IndexFlatIP(x.shape[1])
    else:
        index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    dist, idx = index.search(x, k + 1)
    # drop self: it is usually first, but exact duplicates may come in another order
    n = x.shape[0]
    self_pos = idx == np.arange(n)[:, None]
    missing = ~self_pos.any(1)
    self_pos[missing, -1] = True  # self not among k+1 (many duplicates): drop the last one
    keep = ~self_pos
    idx = idx[keep].reshape(n, k)
    dist = dist[keep].reshape(n, k)
    if metric == "cosine":
        dist = 1.0 - dist
    return dist, idx


def knn(x, k: int, metric: str = "cosine", backend: str = "auto", device=None) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest neighbours of every row of x among the other rows.

    Args:
        x: (N x D) array or tensor.
        k: neighbours per point, 1 <= k < N.
        metric: ``"cosine"`` (distance 1 - cos) or ``"sqeuclidean"``.
        backend: ``"faiss"``, ``"torch"`` or ``"auto"`` (faiss when installed and x is on the CPU).

    Returns:
        (distances, indices), both (N x K) numpy arrays, nearest first.
    """
    if metric not in ("cosine", "sqeuclidean"):
        raise ValueError(f"metric must be 'cosine' or 'sqeuclidean', got {metric!r}")
    on_gpu = isinstance(x, torch.Tensor) and x.is_cuda
    n = x.shape[0]
    V.check_int(k, "k", 1)
    if k >= n:
        raise ValueError(f"k must be smaller than the number of points: k={k}, n={n}")
    if backend == "auto":
        backend = "faiss" if HAVE_FAISS and not on_gpu else "torch"
    if backend == "faiss":
        if not HAVE_FAISS:
            raise ValueError("backend='faiss' needs faiss: pip install faiss-cpu (or iconlearn[faiss])")
        arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
        return _knn_faiss(arr, k, metric)
    if backend != "torch":
        raise ValueError(f"backend must be 'auto', 'faiss' or 'torch', got {backend!r}")
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
    if device is not None:
        t = t.to(device)
    dist, idx = _knn_torch(t.float(), k, metric)
    return dist.cpu().numpy(), idx.cpu().numpy()

"""Input checks for the front doors (public losses, estimators, CLI).

Each check raises ``ValueError`` with a message that says what was wrong and what to do.
"""
from __future__ import annotations

import difflib
import math

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor


def check_embeddings(x, name: str = "embeddings", ndim: int = 2, allow_empty: bool = False) -> Tensor:
    """A floating (N x D) tensor with finite values."""
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if not allow_empty and x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)})")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or Inf values; check the encoder output or the input data")
    return x


def check_same_length(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{name_a} and {name_b} must have the same length, got {a.shape[0]} and {b.shape[0]}")


def check_same_shape(a: Tensor, b: Tensor, name_a: str, name_b: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def check_labels(labels, n: int, name: str = "labels") -> Tensor:
    if not isinstance(labels, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(labels).__name__}")
    if labels.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {tuple(labels.shape)}")
    if labels.shape[0] != n:
        raise ValueError(f"{name} has length {labels.shape[0]} but there are {n} embeddings; pass one label per row")
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{name} must be integer class ids, got dtype {labels.dtype}")
    return labels


def check_positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def check_alpha(alpha, name: str = "alpha") -> float:
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1], got {alpha!r}") from None
    if not (0.0 <= a <= 1.0):
        raise ValueError(f"{name} must lie in [0, 1] (the debiasing weight of eq. 3.3.1), got {alpha!r}")
    return a


def check_int(value, name: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    v = int(value)
    if low is not None and v < low:
        raise ValueError(f"{name} must be >= {low}, got {v}")
    if high is not None and v > high:
        raise ValueError(f"{name} must be <= {high}, got {v}")
    return v


def did_you_mean(name, options) -> str:
    """`` (did you mean 'x'?)`` for the option closest to a misspelt ``name`` (ignoring case), or ``""``."""
    by_lower = {str(o).lower(): str(o) for o in options}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def check_array(X, name: str = "X", min_samples: int = 1, dtype=np.float32) -> np.ndarray:
    """A finite 2-D real array (scikit-learn's ``check_array``, with its messages) from a numpy
    array, a list or a tensor on any device, as ``dtype``; ``dtype=None`` keeps float64 and float32
    and makes other numbers float64. Half-precision inputs (float16, bfloat16) are upcast: distances
    computed in float16 would lose the neighbours. Sparse matrices are refused (no front door uses
    them); object arrays of numbers are read as numbers."""
    if sp.issparse(X):
        raise ValueError(f"{name} is a scipy sparse matrix, and sparse input is not supported: pass a dense array "
                         "(X.toarray()), or reduce it first (e.g. sklearn.decomposition.TruncatedSVD)")
    if isinstance(X, Tensor):
        X = X.detach()
        X = (X.to("cpu", torch.float32) if X.dtype in (torch.float16, torch.bfloat16) else X.cpu()).numpy()
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and the like
        raise ValueError(f"{name} could not be converted to an array: {exc}") from None
    if np.iscomplexobj(arr):
        raise ValueError(f"Complex data not supported: {name} has dtype {arr.dtype}; pass real numbers")
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as exc:  # TypeError as numpy's: scikit-learn's checks expect it
            raise type(exc)(f"{name} must hold numbers: {exc}") from None
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples x n_features), got shape {arr.shape}. Reshape your "
                         "data: X.reshape(-1, 1) if it has a single feature, X.reshape(1, -1) if it is a single sample")
    for n, what, low in ((arr.shape[0], "sample(s)", min_samples), (arr.shape[1], "feature(s)", 1)):
        if n < low:
            raise ValueError(f"{name} has {n} {what} (shape={arr.shape}) while a minimum of {low} is required.")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or Inf values; remove or impute them first")
    if dtype is None:
        dtype = arr.dtype if arr.dtype in (np.float32, np.float64) else np.float32 if arr.dtype == np.float16 \
            else np.float64
    with np.errstate(over="ignore"):
        out = arr.astype(dtype, copy=False)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} has values too large for {np.dtype(dtype).name} (largest |x| = {np.abs(arr).max():g}); "
                         "rescale it first")
    return out


# the range of typical row norms the clusterers work in unchanged (see power_of_two_scale)
MODERATE_SCALE = (2.0 ** -6, 2.0 ** 40)


def power_of_two_scale(X: np.ndarray) -> float:
    """1.0, or the power of two nearest the median row norm of X when that lies outside
    :data:`MODERATE_SCALE`. Dividing by it is exact and leaves every direction and ratio as it was;
    it only keeps features multiplied by 1e30 or 1e-30 away from float32 overflow (squared
    distances), underflow, and from the absolute guards of preprocessing (1e-6 on a column's spread,
    1e-12 on a norm), which would otherwise bend or flatten them."""
    top = float(np.abs(X).max())
    if top == 0.0:
        return 1.0
    e = int(np.frexp(top)[1])  # norms of X / 2^e, in float64 row blocks: no square overflows or underflows
    norms = np.concatenate([np.linalg.norm(np.ldexp(X[s:s + 4096].astype(np.float64), -e), axis=1)
                            for s in range(0, len(X), 4096)])
    log2 = float(np.log2(np.median(norms) or norms.max())) + e
    if np.log2(MODERATE_SCALE[0]) <= log2 <= np.log2(MODERATE_SCALE[1]):
        return 1.0
    return float(np.ldexp(1.0, int(np.round(log2))))

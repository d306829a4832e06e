"""What every estimator shares, written once (scikit-learn's ``base.py`` with ``utils/validation.py``).

* parameters stored as given in ``__init__`` and checked in ``fit`` (scikit-learn's
  ``BaseEstimator``: ``get_params``, ``set_params``, ``clone``, grid search);
* input validation (:func:`check_array`), and the number of features seen in ``fit``
  (:meth:`Estimator._check_features`); for clusterers also the scale (:meth:`Clusterer._validate`);
* the device (:func:`resolve_device`) and seeds: local generators from ``random_state``
  (:func:`resolve_seed`, :func:`draw_seed`, :func:`torch_seeded`), never the global ones;
* :func:`check_is_fitted` (scikit-learn's ``NotFittedError``, a ``ValueError``);
* :class:`Timer`: seconds per stage.
"""
from __future__ import annotations

import time
from contextlib import contextmanager

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils.validation import check_is_fitted as _sklearn_check_is_fitted

from .._runtime import draw_seed, resolve_device, resolve_seed, torch_seeded
from .. import _validation as V
from .._validation import check_array, power_of_two_scale

__all__ = ["Clusterer", "Estimator", "EmbeddingEstimator", "NotFittedError", "Timer", "check_array", "check_is_fitted",
           "draw_seed", "like_input", "resolve_device", "resolve_seed", "torch_seeded"]


def check_is_fitted(estimator, attributes) -> None:
    """Raise :class:`~sklearn.exceptions.NotFittedError` unless ``estimator`` has ``attributes``
    (a name or a list of names set by ``fit``)."""
    _sklearn_check_is_fitted(estimator, attributes, msg="this %(name)s is not fitted yet; call fit first")


def like_input(Y: np.ndarray, X):
    """``Y`` as a tensor on X's device for tensor input, as numpy otherwise."""
    if isinstance(X, torch.Tensor):
        return torch.as_tensor(Y, device=X.device)
    return Y


class Timer:
    """Wall-clock seconds per named stage (``timings``), printed as each ends when ``verbose``;
    :meth:`elapsed` counts from the timer's creation."""

    def __init__(self, verbose: bool = False):
        self.verbose, self.timings = verbose, {}
        self._start = time.perf_counter()

    @contextmanager
    def stage(self, name: str):
        t = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - t
        if self.verbose:
            print(f"[iconlearn] {name}: {self.timings[name]:.2f} s", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self._start


class Estimator(BaseEstimator):
    """Base of iconlearn's estimators: scikit-learn's parameter handling, and the checks that
    methods of a fitted model share."""

    def _check_fitted(self, attributes="n_features_in_") -> None:
        check_is_fitted(self, attributes)

    def _check_features(self, X, name: str = "X", dtype=np.float32) -> np.ndarray:
        """``X`` validated, with as many features as the data ``fit`` saw."""
        X = check_array(X, name, dtype=dtype)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"{name} has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input (the data it was fitted on)")
        return X


class Clusterer(ClusterMixin, Estimator):
    """Base of the clusterers: their input checked and brought to a moderate scale, the same way in
    ``fit`` and ``predict``, and ``n_clusters`` checked against the data."""

    def _validate(self, X, name: str = "X", reset: bool = False) -> np.ndarray:
        """X as float32, checked (dense, real, finite, 2-D; with ``reset`` False, as many features
        as in ``fit``) and divided by ``scale_``, the power of two ``fit`` chose
        (:func:`~iconlearn._validation.power_of_two_scale`: 1 for features of ordinary size).
        ``reset`` (in ``fit``) sets ``n_features_in_`` and ``scale_``."""
        X = check_array(X, name, dtype=None) if reset else self._check_features(X, name, dtype=None)
        if reset:
            self.n_features_in_, self.scale_ = X.shape[1], power_of_two_scale(X)
        return (X if self.scale_ == 1.0 else X / self.scale_).astype(np.float32, copy=False)

    def _check_n_clusters(self, n: int) -> None:
        """``n_clusters`` a positive integer no larger than the number of points ``n``."""
        V.check_int(self.n_clusters, "n_clusters", 1)
        if n < self.n_clusters:
            raise ValueError(f"fewer points than clusters: n={n} < n_clusters={self.n_clusters}")


class EmbeddingEstimator(Estimator):
    """An estimator whose ``fit`` sets ``embedding_``: ``fit_transform`` returns it as numpy for numpy
    input and as a tensor (on the input's device) for tensor input."""

    def fit_transform(self, X=None, y=None, **fit_params):
        """Fit and return the embedding of X."""
        self.fit(X, y, **fit_params)
        return like_input(self.embedding_, X)

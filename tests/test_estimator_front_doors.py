"""The clusterers' front doors: scikit-learn's own estimator checks, and bad input (sparse
matrices, extreme scales, n_clusters=1, the global random and thread state).

The t-SNE estimators have their own tests (test_tsne.py)."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score
from sklearn.utils.estimator_checks import parametrize_with_checks

from iconlearn.estimators.baselines import (KMeansClustering, PlainIConClustering, SCANClustering,
                                            SpectralClusteringBaseline, TEMIClustering)
from iconlearn.estimators.clustering import IConClustering

# small, fast instances: one head, a few optimiser steps
FAST = dict(n_clusters=3, epochs=1, min_steps=5, n_heads=1, device="cpu", random_state=0)
HEADS = [IConClustering(**FAST, n_init=1), SCANClustering(**FAST), TEMIClustering(**FAST),
         PlainIConClustering(**FAST)]
# n_neighbors=5: scikit-learn's NaN/Inf check fits 10 points, fewer than the default k = 10 needs
CLASSIC = [KMeansClustering(3, n_init=1, random_state=0), SpectralClusteringBaseline(3, n_neighbors=5, random_state=0)]
ALL = HEADS + CLASSIC

# scikit-learn checks that cannot pass, with the reason: none at present. (scikit-learn itself skips
# one check per estimator, check_array_api_input, unless SCIPY_ARRAY_API=1 is set: it tests array-API
# namespaces such as array_api_strict, which these estimators do not claim to support.)
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {}


@parametrize_with_checks(ALL, expected_failed_checks=lambda est: EXPECTED_FAILED_CHECKS.get(type(est).__name__, {}))
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _blobs(n_per=30, k=3, d=6, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)) * 3
    return np.concatenate([c + 0.2 * rng.normal(size=(n_per, d)) for c in centers]), np.repeat(np.arange(k), n_per)


def _fast(est):
    """A fresh copy of ``est`` (the head-based methods train for 10 steps)."""
    est = clone(est)
    return est.set_params(min_steps=10) if "min_steps" in est.get_params() else est


# the scale is handled where every head-based method validates its input (HeadClusterer)
@pytest.mark.parametrize("est", [HEADS[0], *CLASSIC], ids=lambda e: type(e).__name__)
def test_features_times_1e30_or_1e_minus_30_give_the_same_clusters(est):
    X, y = _blobs()
    base = _fast(est).fit_predict(X)
    assert len(set(base)) > 1
    for s in (1e30, 1e-30, 1e300, 1e-300):
        assert adjusted_rand_score(base, _fast(est).fit_predict(X * s)) == 1.0, s
    if hasattr(est, "predict"):
        m = _fast(est).fit(X * 1e30)
        assert adjusted_rand_score(base, m.predict(X * 1e30)) == 1.0


@pytest.mark.parametrize("est", ALL, ids=lambda e: type(e).__name__)
def test_sparse_input_is_refused_with_a_message_that_says_so(est):
    X = sp.random(40, 5, density=0.5, format="csr", random_state=0)
    with pytest.raises(ValueError, match="sparse input is not supported.*toarray"):
        clone(est).fit(X)


@pytest.mark.parametrize("est", ALL, ids=lambda e: type(e).__name__)
def test_one_cluster_is_the_trivial_answer_without_training(est):
    X, _ = _blobs()
    m = clone(est).set_params(n_clusters=1)
    if "min_steps" in m.get_params():
        m.set_params(min_steps=10**9, n_neighbors=10**6)  # would take hours or fail if it trained
    labels = m.fit_predict(X)
    assert labels.tolist() == [0] * len(X)
    if hasattr(m, "predict_proba"):
        assert m.predict(X[:5]).tolist() == [0] * 5
        np.testing.assert_array_equal(m.predict_proba(X[:5]), np.ones((5, 1)))


@pytest.mark.parametrize("est", ALL, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("random_state", [None, 0])
def test_global_generators_and_threads_untouched(est, random_state):
    X, _ = _blobs()
    np_state, torch_state, threads = np.random.get_state()[1].copy(), torch.get_rng_state(), torch.get_num_threads()
    _fast(est).set_params(random_state=random_state).fit(X)
    assert (np.random.get_state()[1] == np_state).all()
    assert torch.equal(torch.get_rng_state(), torch_state)
    assert torch.get_num_threads() == threads


@pytest.mark.parametrize("est", [HEADS[0], CLASSIC[0]], ids=lambda e: type(e).__name__)
def test_random_state_as_scikit_learn_takes_it(est):
    X, _ = _blobs()
    a = _fast(est).set_params(random_state=np.random.RandomState(5)).fit_predict(X)
    b = _fast(est).set_params(random_state=np.random.RandomState(5)).fit_predict(X)
    _fast(est).set_params(random_state=np.random.default_rng(5)).fit(X)
    assert (a == b).all()
    for bad in (-1, 2**32, 1.5, "0", True):
        with pytest.raises(ValueError, match="random_state must be None, an integer"):
            _fast(est).set_params(random_state=bad).fit(X)


@pytest.mark.parametrize("est", [e for e in ALL if hasattr(e, "predict")], ids=lambda e: type(e).__name__)
def test_not_fitted_and_wrong_input_at_predict(est):
    X, _ = _blobs()
    with pytest.raises(NotFittedError, match="not fitted yet"):
        clone(est).predict(X)
    m = _fast(est).fit(X)
    with pytest.raises(ValueError, match="X has 2 features, but .* is expecting 6 features"):
        m.predict(X[:, :2])
    with pytest.raises(ValueError, match="Reshape your data"):
        m.predict(X[0])
    if hasattr(m, "predict_proba"):
        assert m.predict_proba(X).dtype == np.float64 == m.predict_proba(X.astype(np.float32)).dtype


@pytest.mark.parametrize("X, match", [
    (np.zeros((0, 3)), r"0 sample\(s\)"),
    (np.zeros((5, 0)), r"0 feature\(s\)"),
    (np.ones((20, 2)) + 1j, "Complex data not supported"),
    (np.array([["a", "b"]] * 20, dtype=object), "must hold numbers"),
    (np.full((20, 2), np.inf), "NaN or Inf"),
    (torch.ones(20, 2, dtype=torch.float16) * float("nan"), "NaN or Inf"),
])
def test_bad_input_messages(X, match):
    for est in (IConClustering(**FAST), KMeansClustering(3)):
        with pytest.raises(ValueError, match=match):
            est.fit(X)


def test_object_arrays_of_numbers_and_tensors_are_read_as_numbers():
    X, y = _blobs()
    a = KMeansClustering(3, random_state=0).fit_predict(X.astype(object))
    b = KMeansClustering(3, random_state=0).fit_predict(torch.as_tensor(X))
    assert adjusted_rand_score(a, y) == 1.0 and adjusted_rand_score(b, y) == 1.0

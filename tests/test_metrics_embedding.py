"""Embedding metrics against scikit-learn and float64 reference loops."""
import numpy as np
import pytest
import torch
from sklearn.manifold import trustworthiness as sk_trust
from sklearn.neighbors import KNeighborsClassifier

from iconlearn.metrics import knn_accuracy, neighborhood_preservation, trustworthiness


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 12))
    Y = X[:, :2] + 0.3 * rng.normal(size=(300, 2))
    y = (X[:, 0] > 0).astype(int) + 2 * (X[:, 1] > 0.5)
    return X, Y, y


@pytest.mark.parametrize("k", [1, 5, 12])
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_trustworthiness_matches_sklearn(data, k, metric):
    X, Y, _ = data
    assert trustworthiness(X, Y, k=k, metric=metric) == pytest.approx(sk_trust(X, Y, n_neighbors=k, metric=metric), abs=1e-12)


def test_trustworthiness_perfect_and_subsampled(data):
    X, Y, _ = data
    assert trustworthiness(X, X, k=5) == pytest.approx(1.0)
    full = trustworthiness(X, Y, k=5)
    est = trustworthiness(X, Y, k=5, n_queries=150, random_state=1)
    assert est != full and abs(est - full) < 0.05  # an estimate over half the points


def _loo_reference(Y, y, k, weighted):
    """Leave-one-out kNN classification in float64, written as a plain loop."""
    correct = 0
    for i in range(len(Y)):
        d = np.sqrt(((Y - Y[i]) ** 2).sum(1))
        d[i] = np.inf
        nn = np.argsort(d, kind="stable")[:k]
        votes = {}
        for j in nn:
            votes[y[j]] = votes.get(y[j], 0.0) + (1.0 / d[j] if weighted else 1.0)
        best = max(sorted(votes), key=lambda c: votes[c])  # smallest label among ties
        correct += best == y[i]
    return correct / len(Y)


@pytest.mark.parametrize("weighted", [False, True])
def test_knn_accuracy_leave_one_out(data, weighted):
    _, Y, y = data
    assert knn_accuracy(Y, y, k=7, weighted=weighted) == pytest.approx(_loo_reference(Y, y, 7, weighted))


@pytest.mark.parametrize("weighted", [False, True])
def test_knn_accuracy_test_set_matches_sklearn(data, weighted):
    _, Y, y = data
    clf = KNeighborsClassifier(5, weights="distance" if weighted else "uniform").fit(Y[:200], y[:200])
    got = knn_accuracy(Y[:200], y[:200], k=5, X_test=Y[200:], y_test=y[200:], weighted=weighted)
    assert got == pytest.approx(clf.score(Y[200:], y[200:]))


def test_knn_accuracy_weighted_cosine_reference(data):
    X, _, y = data
    T = 0.07
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    ref = 0
    for i in range(50):
        s = Xn[200:] @ Xn[i]
        nn = np.argsort(-s, kind="stable")[:20]
        votes = np.zeros(y.max() + 1)
        np.add.at(votes, y[200:][nn], np.exp(s[nn] / T))
        ref += votes.argmax() == y[i]
    got = knn_accuracy(torch.tensor(X[200:]), torch.tensor(y[200:]), k=20, X_test=X[:50], y_test=y[:50],
                       metric="cosine", weighted=True, temperature=T)
    assert got == pytest.approx(ref / 50)


def test_neighborhood_preservation(data):
    X, Y, _ = data
    assert neighborhood_preservation(X, X, k=5) == 1.0
    k = 6
    ref = 0
    for i in range(len(X)):
        dx = ((X - X[i]) ** 2).sum(1); dx[i] = np.inf
        dy = ((Y - Y[i]) ** 2).sum(1); dy[i] = np.inf
        ref += len(set(np.argsort(dx)[:k]) & set(np.argsort(dy)[:k]))
    assert neighborhood_preservation(X, Y, k=k) == pytest.approx(ref / (len(X) * k))


@pytest.mark.parametrize("call, match", [
    (lambda X, Y, y: knn_accuracy(Y, y[:-1]), "labels"),
    (lambda X, Y, y: knn_accuracy(Y, y, k=300), "smaller than the number of points"),
    (lambda X, Y, y: knn_accuracy(Y, y, X_test=Y), "without y_test"),
    (lambda X, Y, y: knn_accuracy(Y, y, X_test=X, y_test=y), "features"),
    (lambda X, Y, y: knn_accuracy(Y, y, metric="manhattan"), "metric"),
    (lambda X, Y, y: trustworthiness(X, Y[:-1]), "same number of rows"),
    (lambda X, Y, y: trustworthiness(X, Y, k=150), "n / 2"),
    (lambda X, Y, y: trustworthiness(np.full_like(X, np.nan), Y), "NaN"),
    (lambda X, Y, y: neighborhood_preservation(X, Y, k=0), ">= 1"),
])
def test_bad_input(data, call, match):
    X, Y, y = data
    with pytest.raises(ValueError, match=match):
        call(X, Y, y)

"""Frozen-encoder evaluation: the torch logistic regression against scikit-learn, kNN against a
brute-force reference, feature extraction."""
import numpy as np
import pytest
import torch

from iconlearn.metrics.probe import extract_features, knn_probe, linear_probe, torch_logistic_regression


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _problem(seed=0, n=400, d=10):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * rng.uniform(0.5, 3, size=d)
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=n) > 0).astype(int) + 2 * (X[:, 2] > 1)
    return X, y, rng.normal(size=(150, d)) * 2


@pytest.mark.parametrize("C", [0.05, 1.0])
def test_torch_logistic_regression_matches_sklearn(C):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    X, y, Xt = _problem()
    s = StandardScaler().fit(X)
    ref = LogisticRegression(C=C, max_iter=5000, tol=1e-8).fit(s.transform(X), y).predict_proba(s.transform(Xt))
    p, classes = torch_logistic_regression(X, y, Xt, C=C, dtype=torch.float64)
    assert list(classes) == [0, 1, 2, 3]
    np.testing.assert_allclose(p, ref, atol=1e-3)


def test_linear_probe_backends_agree_and_check_inputs():
    X, y, _ = _problem(1, n=600)
    a = linear_probe(X[:400], y[:400], X[400:], y[400:])
    b = linear_probe(X[:400], y[:400], X[400:], y[400:], backend="torch")
    assert abs(a - b) <= 0.01 and a > 0.6
    with pytest.raises(ValueError, match="one label per row"):
        linear_probe(X[:400], y[:300], X[400:], y[400:])
    with pytest.raises(ValueError, match="columns"):
        linear_probe(X[:400], y[:400], X[400:, :3], y[400:])
    with pytest.raises(ValueError, match="backend"):
        linear_probe(X[:400], y[:400], X[400:], y[400:], backend="jax")


def test_knn_probe_matches_weighted_cosine_reference():
    rng = np.random.default_rng(0)
    Xtr, ytr = rng.normal(size=(300, 8)), rng.integers(0, 3, 300)
    Xte, yte = rng.normal(size=(50, 8)), rng.integers(0, 3, 50)
    k, T = 20, 0.07
    a = Xte / np.linalg.norm(Xte, axis=1, keepdims=True)
    b = Xtr / np.linalg.norm(Xtr, axis=1, keepdims=True)
    correct = 0
    for i in range(50):
        cos = b @ a[i]
        nn_ = np.argsort(-cos)[:k]
        votes = np.zeros(3)
        for j in nn_:
            votes[ytr[j]] += np.exp(cos[j] / T)
        correct += votes.argmax() == yte[i]
    assert knn_probe(Xtr, ytr, Xte, yte, k=k) == pytest.approx(correct / 50)


def test_extract_features_uint8_equals_float_and_keeps_mode():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3), torch.nn.BatchNorm1d(3))
    net.train()
    imgs = torch.randint(0, 256, (10, 1, 4, 4), dtype=torch.uint8)
    f_u8 = extract_features(net, imgs, batch_size=3)
    f_fl = extract_features(net, imgs.float() / 255, batch_size=4)
    np.testing.assert_allclose(f_u8, f_fl, rtol=1e-6, atol=1e-6)
    assert f_u8.shape == (10, 3) and f_u8.dtype == np.float32 and net.training
    np.testing.assert_allclose(extract_features(net, imgs.numpy()[:, 0]), f_u8, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="NaN or Inf"):
        extract_features(lambda x: x.flatten(1) * float("nan"), imgs)


def test_cluster_probe_recovers_blobs():
    from iconlearn.metrics.probe import cluster_probe

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 6)) * 6
    y = np.repeat(np.arange(3), 60)
    X = centers[y] + rng.normal(size=(180, 6))
    s = cluster_probe(X, y, seed=0, epochs=5, n_heads=2)
    assert set(s) >= {"cluster_acc", "cluster_nmi", "cluster_ari"} and s["cluster_acc"] > 0.9, s

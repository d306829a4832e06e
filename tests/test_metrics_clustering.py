"""Clustering metrics: Hungarian accuracy's padding policy, NMI's normaliser, mean +/- std."""
import math

import numpy as np
import pytest

from iconlearn.metrics.clustering import ami, ari, clustering_scores, hungarian_accuracy, mean_std, nmi


def test_permutation_invariant():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert hungarian_accuracy(y, np.array([2, 2, 0, 0, 1, 1])) == 1.0
    assert nmi(y, [5, 5, 3, 3, 9, 9]) == pytest.approx(1.0)


def test_surplus_clusters_count_as_errors():
    y = np.array([0, 0, 0, 1, 1, 1])
    # 3 predicted clusters for 2 classes: cluster 2 (one point) is matched to nothing
    assert hungarian_accuracy(y, [0, 0, 2, 1, 1, 1]) == pytest.approx(5 / 6)
    # all points in distinct clusters: only 2 can be matched
    assert hungarian_accuracy(y, np.arange(6)) == pytest.approx(2 / 6)
    # fewer clusters than classes: the unmatched class is wrong
    assert hungarian_accuracy([0, 1, 2, 2], [0, 0, 1, 1]) == pytest.approx(3 / 4)


def test_nmi_arithmetic_reference():
    y = np.array([0, 0, 1, 1, 1, 2])
    p = np.array([0, 1, 1, 1, 0, 0])
    n = len(y)
    def H(a):
        _, c = np.unique(a, return_counts=True)
        q = c / n
        return -(q * np.log(q)).sum()
    mi = 0.0
    for a in np.unique(y):
        for b in np.unique(p):
            nab = np.sum((y == a) & (p == b))
            if nab:
                mi += nab / n * math.log(nab * n / (np.sum(y == a) * np.sum(p == b)))
    assert nmi(y, p) == pytest.approx(mi / ((H(y) + H(p)) / 2))


def test_scores_and_errors():
    s = clustering_scores([0, 1, 1, 0], [1, 0, 0, 1])
    assert s == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0, "ami": 1.0})
    assert ari([0, 0, 1, 1], [0, 1, 0, 1]) <= 0 and ami([0, 0, 1, 1], [0, 1, 0, 1]) <= 0.01
    with pytest.raises(ValueError, match="same length"):
        hungarian_accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="integer"):
        nmi([0.5, 1.0], [0, 1])
    with pytest.raises(ValueError, match="empty"):
        ari([], [])


def test_mean_std():
    ms = mean_std([{"acc": 0.5}, {"acc": 0.7}])
    assert ms["acc"] == pytest.approx((0.6, 0.1))
    with pytest.raises(ValueError, match="no runs"):
        mean_std([])

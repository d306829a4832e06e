"""``iconlearn cluster`` on user features: the table, the report folder, and clear errors."""
import json

import numpy as np
import pytest

from iconlearn.cli import main


@pytest.fixture(autouse=True)
def few_steps(monkeypatch):
    """Small data otherwise trains for min_steps=300 optimiser steps: the command's head-based
    methods get min_steps=20, to keep the suite fast."""
    from iconlearn import report
    from iconlearn.estimators.clustering import HeadClusterer

    default_methods = report.default_methods

    def fast(make):
        return lambda seed: (lambda m: m.set_params(min_steps=20) if isinstance(m, HeadClusterer) else m)(make(seed))

    monkeypatch.setattr(report, "default_methods",
                        lambda *a, **kw: {name: fast(make) for name, make in default_methods(*a, **kw).items()})


def blobs(tmp_path, n_per=30, k=3, wrong_labels=False):
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(k, 5)) * 4
    X = np.concatenate([c + 0.2 * rng.normal(size=(n_per, 5)) for c in centers]).astype(np.float32)
    y = np.repeat(np.arange(k), n_per)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y[:-1] if wrong_labels else y)
    return tmp_path / "X.npy", tmp_path / "y.npy"


def test_cluster_features_writes_report(tmp_path, capsys):
    X, y = blobs(tmp_path)
    out = tmp_path / "report"
    rc = main(["cluster", "--features", str(X), "--labels", str(y), "--methods", "I-Con,k-means",
               "--seeds", "0", "--epochs", "2", "--device", "cpu", "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "| I-Con |" in text and "| k-means |" in text and "Hungarian acc" in text
    for name in ("results.md", "results.json", "confusion.png", "map.png"):
        assert (out / name).stat().st_size > 0
    data = json.loads((out / "results.json").read_text())
    assert {r["method"] for r in data["runs"]} == {"I-Con", "k-means"}
    assert data["summary"]["k-means"]["acc"]["mean"] == pytest.approx(1.0)


def test_cluster_without_labels_saves_assignments(tmp_path):
    X, _ = blobs(tmp_path)
    rc = main(["cluster", "--features", str(X), "--n-clusters", "3", "--methods", "k-means", "--seeds", "1",
               "--out", str(tmp_path / "o")])
    assert rc == 0
    table = np.loadtxt(tmp_path / "o" / "labels.csv", delimiter=",", skiprows=1, dtype=np.int64)
    assert table.shape == (90,)  # one column: k-means, seed 1
    assert (tmp_path / "o" / "labels.csv").read_text().startswith("k-means seed 1\n")


@pytest.mark.parametrize("argv, match", [
    (["--labels", "WRONG"], "length 89"),
    (["--seeds", "a,b"], "--seeds"),
    (["--methods", "DBSCAN"], "unknown method"),
    (["--n-clusters", "0"], ">= 1"),
])
def test_cluster_errors(tmp_path, capsys, argv, match):
    X, y = blobs(tmp_path, wrong_labels="WRONG" in argv)
    argv = [a if a != "WRONG" else str(y) for a in argv]
    base = ["cluster", "--features", str(X), "--epochs", "1", "--seeds", "0", "--out", str(tmp_path / "o")]
    if "--labels" not in argv:
        base += ["--labels", str(y)]
    assert main(base + argv) == 2
    assert match in capsys.readouterr().err


def test_cluster_missing_file_and_unknown_dataset(tmp_path, capsys):
    assert main(["cluster", "--features", str(tmp_path / "none.npy")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["cluster", "--dataset", "cifar10", "--out", str(tmp_path / "o")]) == 2
    assert "unknown dataset" in capsys.readouterr().err

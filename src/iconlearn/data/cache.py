"""An on-disk cache of feature matrices that is never trusted blindly.

Each entry is ``<key>.npy`` plus ``<key>.json`` (metadata: shape, dtype, sha256 of the array's
bytes, the cache format and whatever the caller puts in, e.g. the encoder and its version).
Both files are written atomically (:func:`iconlearn._files.atomic_write`), the metadata last, so a reader sees either a complete entry or none. On load, an entry whose
metadata is missing or unreadable, from another format or encoder version, or whose array does
not match its recorded shape or checksum is treated as absent (the caller rebuilds it).

The cache folder is ``$ICONLEARN_CACHE`` when set, otherwise ``~/.cache/iconlearn``.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from pathlib import Path

import numpy as np

from .._files import atomic_write

FORMAT = 1


def cache_dir(path: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``path``, else ``$ICONLEARN_CACHE``, else ``~/.cache/iconlearn``."""
    if path is None:
        path = os.environ.get("ICONLEARN_CACHE") or Path.home() / ".cache" / "iconlearn"
    return Path(path).expanduser()


def make_key(*parts) -> str:
    """A file-name-safe key from its parts (dataset, split, encoder, version, options...)."""
    text = "-".join(str(p) for p in parts if p is not None and p != "")
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", text)


def checksum(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).view(np.uint8).data).hexdigest()


def save(key: str, arr: np.ndarray, meta: dict | None = None, root=None) -> Path:
    """Store ``arr`` under ``key`` atomically; returns the .npy path."""
    root = cache_dir(root)
    arr = np.ascontiguousarray(arr)
    info = dict(meta or {})
    info.update(format=FORMAT, shape=list(arr.shape), dtype=str(arr.dtype), sha256=checksum(arr))
    npy, js = root / f"{key}.npy", root / f"{key}.json"
    with atomic_write(npy, "wb") as f:
        np.save(f, arr, allow_pickle=False)
    with atomic_write(js) as f:
        f.write(json.dumps(info, indent=1, sort_keys=True))
    return npy


def load(key: str, expect: dict | None = None, root=None, verify: bool = True) -> np.ndarray | None:
    """The array stored under ``key``, or None when absent or not to be trusted.

    ``expect`` lists metadata that must match (e.g. ``{"encoder_version": "0.1.0"}``); a
    mismatch, a truncated or corrupted array or unreadable metadata returns None with a warning
    (the caller then rebuilds the entry).
    """
    root = cache_dir(root)
    npy, js = root / f"{key}.npy", root / f"{key}.json"
    if not npy.exists() and not js.exists():
        return None

    def stale(why: str) -> None:
        warnings.warn(f"feature cache {npy} is not usable ({why}); rebuilding it", RuntimeWarning, stacklevel=3)

    try:
        info = json.loads(js.read_text())
    except (OSError, ValueError) as e:
        return stale(f"metadata unreadable: {e}")
    if info.get("format") != FORMAT:
        return stale(f"cache format {info.get('format')!r}, expected {FORMAT}")
    for name, value in (expect or {}).items():
        if info.get(name) != value:
            return stale(f"{name} is {info.get(name)!r}, expected {value!r}")
    try:
        arr = np.load(npy, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        return stale(f"array unreadable: {e}")
    if list(arr.shape) != info.get("shape") or str(arr.dtype) != info.get("dtype"):
        return stale(f"array is {arr.dtype}{list(arr.shape)}, metadata says {info.get('dtype')}{info.get('shape')}")
    if verify and checksum(arr) != info.get("sha256"):
        return stale("checksum mismatch")
    return arr


def metadata(key: str, root=None) -> dict | None:
    try:
        return json.loads((cache_dir(root) / f"{key}.json").read_text())
    except (OSError, ValueError):
        return None

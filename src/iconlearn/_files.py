"""Files written whole or not at all, and output folders checked before a run starts."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "save_npy", "save_figure", "check_writable_dir", "fresh_output_dir"]


def _umask_mode() -> int:
    """0o666 minus the process umask: the mode a plain open() would give (mkstemp gives 0o600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_write(path, mode: str = "w"):
    """Open a temporary file beside ``path`` (``mode`` "w" or "wb"); when the block ends it is
    flushed, synced to disk, given the mode a plain ``open`` would give, and moved onto ``path``
    with one ``os.replace``. If the block raises, the temporary file is removed and ``path`` keeps
    its old content: a reader never sees a half-written file.

        with atomic_write(out / "metrics.json") as f:
            f.write(json.dumps(metrics))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _umask_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_npy(path, array) -> None:
    """``np.save`` through :func:`atomic_write`."""
    import numpy as np

    with atomic_write(path, "wb") as f:
        np.save(f, array)


def save_figure(fig, path, **kwargs) -> None:
    """``fig.savefig`` through :func:`atomic_write` (the format from the file's suffix)."""
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format=Path(path).suffix.lstrip(".") or "png", **kwargs)


def check_writable_dir(path, what: str = "output folder") -> Path:
    """``path`` created if missing and shown writable (a temporary file made and removed in it),
    before a run does any work; ``ValueError`` saying why not."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"the {what} {str(path)!r} is a file, not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".iconlearn-write-test.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"cannot write to the {what} {str(path)!r}: {exc.strerror or exc}") from None
    return path


def fresh_output_dir(path, overwrite: bool = False, names=None) -> Path:
    """Where a run writes its report: ``path``, unless it holds files of an earlier run (any file,
    or any of ``names`` when given) and ``overwrite`` is off; then the first of ``path-2``,
    ``path-3``, ... that does not. Checked writable (:func:`check_writable_dir`)."""
    path = Path(path)

    def taken(p: Path) -> bool:  # (a file in the way is check_writable_dir's to report)
        if not p.is_dir():
            return False
        return any(True for _ in p.iterdir()) if names is None else any((p / n).exists() for n in names)

    out, i = path, 1
    while not overwrite and taken(out):
        i += 1
        out = path.with_name(f"{path.name}-{i}")
    return check_writable_dir(out)

"""Files written whole or not at all, and output folders checked before a run starts."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_write", "check_writable_dir"]


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


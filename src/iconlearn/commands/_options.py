"""What several commands check the same way before they start: the device, and the folder a run
writes its report to (never over an earlier run's files unless ``--overwrite``)."""
from __future__ import annotations

from pathlib import Path


def add_output(p, help: str, required: bool = False) -> None:
    p.add_argument("--out", default=None, required=required, help=help)
    p.add_argument("--overwrite", action="store_true",
                   help="write over the files of an earlier run in --out (default: a new folder --out-2, -3, ...)")


def output_dir(args, default: str, names=None) -> Path:
    """``--out`` (or ``default``), or when it holds an earlier run's files (any, or ``names``) and
    ``--overwrite`` is off, the next free numbered folder beside it, said in a line; checked
    writable before any work starts."""
    from .._files import fresh_output_dir

    wanted = Path(args.out or default)
    out = fresh_output_dir(wanted, args.overwrite, names)
    if out != wanted:
        print(f"{wanted} holds an earlier run: writing to {out} instead (--overwrite writes over it)", flush=True)
    return out


def check_device(name: str) -> None:
    """``--device`` usable on this machine (CUDA asked for without a GPU is an error now, not later)."""
    from .._runtime import resolve_device

    try:
        resolve_device(name)
    except ValueError as exc:
        raise ValueError(f"--device {name}: {exc}") from None

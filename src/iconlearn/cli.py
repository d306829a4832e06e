"""The ``iconlearn`` command. Each subcommand lives in ``iconlearn.commands.<name>`` and defines
``add_parser(subparsers)`` (which registers it and sets ``func``) — this file only dispatches.

A user error (bad argument, unreadable or unwritable path, bad data) is one line on stderr and exit
code 2; Ctrl-C is one line (saying what was kept) and exit code 130. ``ICONLEARN_DEBUG=1`` shows
the traceback instead.
"""
from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

# name of each command module under iconlearn.commands, in the order shown by --help
COMMANDS = ["demo", "cluster", "embed", "pretrain", "reproduce"]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors, and a "did you mean" for a misspelt choice."""

    def error(self, message: str):
        from ._validation import did_you_mean

        bad = re.search(r"invalid choice: '(.*?)' \(choose from (.*)\)", message)
        if bad:
            message += did_you_mean(bad.group(1), re.findall(r"'?([^',\s]+)'?", bad.group(2)))
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = Parser(
        prog="iconlearn",
        description="Representation learning as one KL divergence (I-Con): clustering, t-SNE, contrastive learning.",
    )
    parser.add_argument("--version", action="version", version=f"iconlearn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"iconlearn.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"iconlearn.commands.{name}":
                continue  # command not built yet
            raise
        module.add_parser(sub)
    return parser


def _say(prog: str, text) -> None:
    print(f"{prog}: {' '.join(str(text).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    prog = "iconlearn"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help()
            return 2
        prog = f"iconlearn {args.command}"
        return int(args.func(args) or 0)
    except (KeyboardInterrupt, ValueError, OSError, FloatingPointError) as exc:
        # user errors (bad arguments, paths or data: ConfigError, ...), Ctrl-C, a run that diverged
        if os.environ.get("ICONLEARN_DEBUG", "") not in ("", "0"):
            raise
        if isinstance(exc, KeyboardInterrupt):
            _say(prog, str(exc) or "interrupted (Ctrl-C)")
            return 130
        _say(prog, f"error: {exc}")
        return 1 if isinstance(exc, FloatingPointError) else 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

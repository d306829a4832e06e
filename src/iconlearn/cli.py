"""The ``iconlearn`` command. Each subcommand lives in ``iconlearn.commands.<name>`` and defines
``add_parser(subparsers)`` (which registers it and sets ``func``) — this file only dispatches."""
from __future__ import annotations

import argparse
import importlib
import sys

# name of each command module under iconlearn.commands, in the order shown by --help
COMMANDS = ["demo", "cluster", "embed", "pretrain", "reproduce"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iconlearn",
        description="Representation learning as one KL divergence (I-Con): clustering, t-SNE, contrastive learning.",
    )
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


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"iconlearn {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

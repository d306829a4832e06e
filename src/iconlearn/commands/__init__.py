"""Subcommands of the ``iconlearn`` command, one module each (see iconlearn.cli)."""

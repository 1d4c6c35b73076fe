"""The `masklet` command line: `common.py` at the bottom, one module per command group."""

from masklet.cli.main import build_parser, main

__all__ = ["build_parser", "main"]

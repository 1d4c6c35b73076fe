"""The `masklet` command: one parser over the command modules, errors as exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from masklet import __version__
from masklet.cli import annotate, bench, evaluate, images, models, projects, review, serve, train, video
from masklet.cli.common import EXIT_ERROR, EXIT_INTERRUPTED, note
from masklet.errors import MaskletError

COMMAND_MODULES = (models, images, video, projects, review, evaluate, annotate, serve, bench, train)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="masklet", description="SAM 2 for images and videos, and its data engine"
    )
    parser.add_argument("--version", action="version", version=f"masklet {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "multimask", False) is None:
        args.multimask = not args.box and len(args.point or []) == 1
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except MaskletError as exc:
        note(f"masklet {args.command}: error: {exc}")
        return EXIT_ERROR
    except KeyboardInterrupt:
        note("interrupted")
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

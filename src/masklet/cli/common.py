"""What every `masklet` command shares: model options, the database options, output, exit codes.

The bottom of the CLI package: the command modules import from here, never from each other.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Sequence
from typing import Any

EXIT_OK = 0
EXIT_ERROR = 2  # a MaskletError: bad input, a missing file, a conflict; the message says which
EXIT_INTERRUPTED = 130
DEFAULT_DB = "sqlite:///masklet.db"
FAST_HELP = ("speed over exactness: bfloat16 where the device computes it (CUDA, CPUs with AVX-512 BF16 "
             "or AMX; elsewhere float32 as without it), the image encoder compiled on CUDA")


def echo(text: str = "") -> None:
    print(text)  # noqa: T201 - a front end: printing is its job


def note(text: str) -> None:
    """A remark on stderr (stdout stays the command's result)."""
    print(text, file=sys.stderr)  # noqa: T201


def table(rows: Sequence[Sequence[str]]) -> str:
    """Rows as left-aligned columns, two spaces apart."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


# ------------------------------------------------------------------------------ argument types
def _parse_floats(text: str, count: tuple[int, ...], what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{what} must be comma-separated numbers, got {text!r}") from None
    if len(values) not in count:
        expected = " or ".join(str(c) for c in count)
        raise argparse.ArgumentTypeError(f"{what} needs {expected} numbers, got {text!r}")
    return values


def point_arg(text: str) -> tuple[float, float, int]:
    """X,Y or X,Y,LABEL (label 1 = foreground, 0 = background)."""
    values = _parse_floats(text, (2, 3), "--point")
    label = int(values[2]) if len(values) == 3 else 1
    if label not in (0, 1):
        raise argparse.ArgumentTypeError(
            f"--point label must be 1 (foreground) or 0 (background), got {label}"
        )
    return values[0], values[1], label


def box_arg(text: str) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = _parse_floats(text, (4,), "--box")
    return x0, y0, x1, y1


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def int_list(text: str) -> list[int]:
    """Comma-separated non-negative integers."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


# --------------------------------------------------------------------------------------- model
def add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="sam2.1_hiera_t", help="config name (see `masklet models`)")
    parser.add_argument(
        "--checkpoint", default=None,
        help="path to an official .pt file, or 'download'; without it the weights are random",
    )  # fmt: skip
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--image-size", type=int, default=None, help="override the model input size (default 1024)"
    )


def build_model_from_args(args: argparse.Namespace) -> Any:
    from masklet.build import build_sam2

    overrides = {} if args.image_size is None else {"image_size": args.image_size}
    if args.checkpoint is None:
        note(f"note: no --checkpoint given, {args.model} has random weights")
    return build_sam2(args.model, args.checkpoint, args.device, **overrides)


# ------------------------------------------------------------------------------------ database
def store_options() -> argparse.ArgumentParser:
    """A parent parser with --db and --by, for the commands that use the project database."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", default=None, help=f"database URL (default: $MASKLET_DB or {DEFAULT_DB})")
    common.add_argument("--by", default=None, help="who is acting (default: the login name)")
    return common


def database_url(args: argparse.Namespace) -> str:
    return args.db or os.environ.get("MASKLET_DB") or DEFAULT_DB


def open_store(args: argparse.Namespace) -> Any:
    from masklet.engine.store import Store

    return Store(database_url(args))


def acting_user(args: argparse.Namespace) -> str:
    """--by, else the login name (else "cli" where there is none, as in some containers)."""
    if args.by:
        return args.by
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def peak_memory_mib() -> float | None:
    """This process's peak resident memory (ru_maxrss) in MiB; None where unavailable."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB elsewhere

"""`masklet models` and `masklet download`: the official checkpoints and the local cache."""

from __future__ import annotations

import argparse
from typing import Any

from masklet.cli.common import EXIT_OK, echo, table


def cmd_models(args: argparse.Namespace) -> int:
    from masklet.checkpoints import list_checkpoints

    rows = [("name", "size", "cached", "url")]
    for entry in list_checkpoints(cache_dir=args.cache_dir):
        info = entry.info
        size = f"{info.size_bytes / 2**20:.0f} MiB" if info.size_bytes else "?"
        rows.append((info.config_name, size, str(entry.path) if entry.cached else "no", info.url))
    echo(table(rows))
    return EXIT_OK


def cmd_download(args: argparse.Namespace) -> int:
    from masklet.checkpoints import download_checkpoint

    echo(str(download_checkpoint(args.name, cache_dir=args.cache_dir, progress=True)))
    return EXIT_OK


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "models", help="list the official models and whether their checkpoints are cached"
    )
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_models)

    p = subparsers.add_parser("download", help="download an official checkpoint into the cache")
    p.add_argument("name", help="config name, e.g. sam2.1_hiera_t")
    p.add_argument("--cache-dir", default=None)
    p.set_defaults(func=cmd_download)

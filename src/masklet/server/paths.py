"""Paths a request names, checked to lie under the folders the server serves."""

from __future__ import annotations

import os
from pathlib import Path

from masklet.server.errors import OutsideServedFolders


def served_path(text: str, roots: tuple[Path, ...]) -> Path:
    """The real path of `text` if it lies under one of `roots` (links resolved first).

    A relative path is taken relative to the first root. Refused: no served folders, a NUL
    byte, and anything that resolves outside every root ("..", symlinks, absolute paths).
    """
    if not roots:
        raise OutsideServedFolders(
            "this server serves no folders; start it with --media-root DIR to register videos"
        )
    if "\x00" in text:
        raise OutsideServedFolders("a path with a NUL byte is not a path")
    candidate = Path(text)
    if not candidate.is_absolute():
        candidate = roots[0] / candidate
    real = Path(os.path.realpath(candidate))
    for root in roots:
        if real == root or real.is_relative_to(root):
            return real
    raise OutsideServedFolders(f"{text!r} is outside the served folders ({', '.join(str(r) for r in roots)})")

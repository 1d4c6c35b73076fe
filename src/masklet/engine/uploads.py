"""Videos uploaded to the server: the file name checked, the bytes kept under the data folder.

A front end writes the request body to a staging file (counting bytes against its limit) and
hands it here; `add_uploaded_video` checks the name, moves the file to
`uploads/<project id>/<name>` (a numbered name when taken), probes and registers it, and removes
it again when it is not a readable video, so a refused upload leaves nothing behind.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from masklet.engine.projects import add_video
from masklet.engine.records import Project, Video
from masklet.engine.service import ProjectRef, find_project
from masklet.engine.store import Store
from masklet.errors import MaskletError

__all__ = [
    "VIDEO_SUFFIXES",
    "UploadNameError",
    "UploadTooLarge",
    "add_uploaded_video",
    "check_upload_name",
    "staging_dir",
]

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]{0,127}")


class UploadNameError(MaskletError):
    """An upload's file name that is not a plain video file name."""


class UploadTooLarge(MaskletError):
    """An upload over the server's size limit."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the upload is larger than this server's limit of {limit_bytes / 2**20:.0f} MiB")
        self.limit_bytes = limit_bytes


def check_upload_name(name: str) -> str:
    """`name` if it is a bare file name with a video suffix; refuses paths, `..` and odd characters."""
    if not _SAFE_NAME.fullmatch(name) or ".." in name:
        raise UploadNameError(
            f"{name!r} is not a plain file name (letters, digits, '.', '_', '-', spaces; no folders, no '..')"
        )
    if Path(name).suffix.lower() not in VIDEO_SUFFIXES:
        raise UploadNameError(f"{name!r}: a video upload ends in one of {', '.join(VIDEO_SUFFIXES)}")
    return name


def staging_dir(data_dir: str | os.PathLike[str]) -> Path:
    """Where a front end writes an upload's bytes before `add_uploaded_video` takes them."""
    folder = Path(data_dir) / "uploads" / ".staging"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _move_to_a_free_name(staged: Path, folder: Path, name: str) -> Path:
    """Move `staged` to `folder/name`, or `name-1`, `name-2`, ... when taken; never over a file.

    The name is claimed with a hard link, which fails if it exists: two uploads of one name at
    once (two threads or two workers) get two files, not one file twice.
    """
    stem, suffix = Path(name).stem, Path(name).suffix
    n = 0
    while True:
        candidate = folder / (name if n == 0 else f"{stem}-{n}{suffix}")
        try:
            os.link(staged, candidate)
        except FileExistsError:
            n += 1
            continue
        except OSError:  # a file system without hard links: reserve the name, then move onto it
            try:
                with open(candidate, "xb"):
                    pass
            except FileExistsError:
                n += 1
                continue
            os.replace(staged, candidate)
            return candidate
        staged.unlink()
        return candidate


def add_uploaded_video(
    store: Store,
    project: ProjectRef,
    staged: str | os.PathLike[str],
    name: str,
    data_dir: str | os.PathLike[str],
    *,
    by: str,
) -> tuple[Project, Video]:
    """Register the staged upload `staged` as the video `name` of a project (the staged file is
    consumed: moved into place, or deleted when refused)."""
    staged = Path(staged)
    try:
        check_upload_name(name)
        found = find_project(store, project)
        folder = Path(data_dir) / "uploads" / str(found.id)
        folder.mkdir(parents=True, exist_ok=True)
        target = _move_to_a_free_name(staged, folder, name)
    finally:
        staged.unlink(missing_ok=True)
    try:
        return found, add_video(store, found.id, target, by=by)
    except Exception:
        target.unlink(missing_ok=True)
        raise

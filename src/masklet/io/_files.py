"""File helpers shared by the mask and format modules: atomic writes and checked JSON reads."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from masklet.errors import FormatError

__all__ = ["atomic_directory", "list_numbered", "read_json", "write_bytes_atomic", "write_json_atomic"]


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes, *, durable: bool = True) -> Path:
    """Write `data` to a temporary file beside `path`, then rename it over `path`.

    A crash leaves either the old file or the new one, never a half-written one; `durable`
    also flushes the data to disk before the rename (skip it for many small files written
    inside an `atomic_directory`). The file gets the usual permissions (0o666 less umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> Path:
    """Serialise `obj` first (so a bad value touches no file), then write it atomically."""
    text = json.dumps(obj, allow_nan=False)
    return write_bytes_atomic(path, text.encode("utf-8"))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Load a JSON file; a missing file or malformed JSON raises FormatError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise FormatError(f"{path}: cannot read the file as UTF-8 text ({e})") from e
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(
            f"{path}: malformed JSON at line {e.lineno}, column {e.colno}: {e.msg}; "
            "is the file complete (not truncated)?"
        ) from None


@contextmanager
def atomic_directory(path: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder that replaces `path` only when the block succeeds.

    On an exception the temporary folder is removed and `path` is left as it was.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    tmp.mkdir()  # mode 0o777 less umask, unlike mkdtemp's 0o700
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = None
    if path.exists():
        old = path.parent / f".{path.name}.{uuid.uuid4().hex}.old"
        os.replace(path, old)
    os.replace(tmp, path)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def list_numbered(
    folder: str | os.PathLike[str], *, suffix: str = ".png", dirs: bool = False
) -> list[tuple[int, Path]]:
    """(number, path) for each `NNNNN{suffix}` file (or numbered sub-folder) in `folder`, sorted.

    Hidden entries and files with other suffixes are skipped; a matching entry whose
    name is not a number raises FormatError.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FormatError(f"{folder}: not a folder")
    found = []
    for entry in folder.iterdir():
        if entry.name.startswith(".") or entry.is_dir() != dirs:
            continue
        if not dirs and entry.suffix.lower() != suffix:
            continue
        stem = entry.name if dirs else entry.stem
        if not stem.isdigit():
            kind = "folder" if dirs else "file"
            raise FormatError(f"{entry}: a {kind} name must be a number (like 00000{'' if dirs else suffix})")
        found.append((int(stem), entry))
    found.sort()
    for (a, pa), (b, pb) in zip(found, found[1:], strict=False):
        if a == b:
            raise FormatError(f"{folder}: {pa.name} and {pb.name} have the same number {a}")
    return found

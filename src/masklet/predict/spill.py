"""A per-session folder for tensors moved out of RAM, removed when the session closes."""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from masklet.errors import SessionError


class SpillDir:
    """Tensors stored by key as raw bytes in a private temporary folder.

    Values come back bit for bit (bfloat16 included). The folder is created on the
    first `save` and deleted by `close` (or when the object is garbage-collected).
    """

    def __init__(self, parent: str | os.PathLike[str] | None = None) -> None:
        self._parent = None if parent is None else Path(parent)
        self._path: Path | None = None
        self._meta: dict[str, tuple[torch.dtype, tuple[int, ...]]] = {}
        self._finalizer: weakref.finalize | None = None
        self._closed = False

    @property
    def path(self) -> Path | None:
        """The folder, or None while nothing has been spilled."""
        return self._path

    def __contains__(self, key: str) -> bool:
        return key in self._meta

    def __len__(self) -> int:
        return len(self._meta)

    def _file(self, key: str) -> Path:
        if self._closed:
            raise SessionError("the session is closed; its spilled tensors are gone")
        if self._path is None:
            self._path = Path(tempfile.mkdtemp(prefix="masklet-session-", dir=self._parent))
            self._finalizer = weakref.finalize(self, shutil.rmtree, str(self._path), ignore_errors=True)
        return self._path / f"{key}.bin"

    def save(self, key: str, tensor: Tensor) -> None:
        """Write `tensor` under `key` (replacing an earlier value)."""
        data = tensor.detach().to("cpu").contiguous()
        raw = data.reshape(-1).view(torch.uint8).numpy()
        raw.tofile(self._file(key))
        self._meta[key] = (data.dtype, tuple(data.shape))

    def load(self, key: str, device: torch.device | str = "cpu") -> Tensor:
        dtype, shape = self._meta[key]
        raw = torch.from_numpy(np.fromfile(self._file(key), dtype=np.uint8))
        return raw.view(dtype).reshape(shape).to(device)

    def delete(self, key: str) -> None:
        if self._meta.pop(key, None) is not None and self._path is not None:
            (self._path / f"{key}.bin").unlink(missing_ok=True)

    def close(self) -> None:
        """Delete the folder and everything in it; further saves raise SessionError."""
        self._closed = True
        self._meta.clear()
        if self._finalizer is not None:
            self._finalizer()

"""The `FrameSource` interface and the bounded frame cache the sources share."""

from __future__ import annotations

import abc
import operator
from collections import OrderedDict
from collections.abc import Iterator
from types import TracebackType

import numpy as np

from masklet.errors import FrameSourceError

__all__ = ["FrameSource", "FrameCache"]


class FrameCache:
    """A least-recently-used map from frame index to a read-only frame, at most `max_items` long."""

    def __init__(self, max_items: int) -> None:
        if max_items < 0:
            raise ValueError(f"a frame cache holds 0 or more frames, got max_items={max_items}")
        self.max_items = max_items
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()

    def get(self, frame: int) -> np.ndarray | None:
        image = self._items.get(frame)
        if image is not None:
            self._items.move_to_end(frame)
        return image

    def put(self, frame: int, image: np.ndarray) -> None:
        if self.max_items == 0:
            return
        image.flags.writeable = False  # cached frames are shared; callers get copies
        self._items[frame] = image
        self._items.move_to_end(frame)
        while len(self._items) > self.max_items:
            self._items.popitem(last=False)

    def keys(self) -> list[int]:
        return list(self._items)

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class FrameSource(abc.ABC):
    """Frames of one video, by index, as (H, W, 3) uint8 RGB arrays.

    `num_frames` is None while a live stream has not ended; `len()` then raises TypeError.
    Iterating yields every frame in order. Close the source (or use `with`) to release files.
    """

    is_live: bool = False

    def __init__(self, *, name: str, height: int, width: int, fps: float | None) -> None:
        self.name = name  # used in error messages: a path, or a description of the input
        self._height = height
        self._width = width
        self._fps = fps
        self._closed = False

    @property
    @abc.abstractmethod
    def num_frames(self) -> int | None:
        """The number of frames, or None for a live stream that has not ended."""

    @abc.abstractmethod
    def _read(self, frame: int) -> np.ndarray:
        """Frame `frame` (already range-checked); may be a shared read-only array."""

    @property
    def height(self) -> int:
        return self._height

    @property
    def width(self) -> int:
        return self._width

    @property
    def fps(self) -> float | None:
        """Frames per second (the average for variable-rate files); None when unknown."""
        return self._fps

    @property
    def closed(self) -> bool:
        return self._closed

    def get(self, frame: int) -> np.ndarray:
        """Frame `frame` as a new (H, W, 3) uint8 RGB array."""
        self._check_open()
        return np.array(self._read(self._check_index(frame)), copy=True)

    def __getitem__(self, frame: int) -> np.ndarray:
        return self.get(frame)

    def __iter__(self) -> Iterator[np.ndarray]:
        num_frames = self.num_frames
        assert num_frames is not None  # live sources override __iter__
        for frame in range(num_frames):
            yield self.get(frame)

    def __len__(self) -> int:
        num_frames = self.num_frames
        if num_frames is None:
            # TypeError, so that list(), bool() and length hints treat us like any unsized iterable
            raise TypeError(f"{self.name}: the length of a live stream is unknown until it ends")
        return num_frames

    def __bool__(self) -> bool:  # never fall back to __len__, which raises on live streams
        return True

    def close(self) -> None:
        """Release files and buffers; further `get` calls raise FrameSourceError."""
        if not self._closed:
            self._closed = True
            self._close()

    @abc.abstractmethod
    def _close(self) -> None:
        """Release what the source holds (called once, by `close`)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        frames = "?" if self.num_frames is None else self.num_frames
        return f"{type(self).__name__}({self.name!r}, frames={frames}, size={self.width}x{self.height})"

    def _check_open(self) -> None:
        if self._closed:
            raise FrameSourceError(f"{self.name}: the frame source is closed; open it again to read frames")

    def _check_index(self, frame: int) -> int:
        try:
            index = operator.index(frame)
        except TypeError:
            raise FrameSourceError(
                f"{self.name}: a frame index must be an integer, got {type(frame).__name__} {frame!r}"
            ) from None
        num_frames = self.num_frames
        if index < 0 or (num_frames is not None and index >= num_frames):
            valid = "none (the source is empty)" if num_frames == 0 else f"0..{num_frames - 1}"
            if num_frames is None:
                valid = "0 or more"
            raise FrameSourceError(f"{self.name}: frame {frame} is out of range; valid frames are {valid}")
        return index

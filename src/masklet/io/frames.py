"""Frame sources: one interface over video files, image folders, arrays and live iterators.

Every source hands out frames as (H, W, 3) uint8 RGB arrays that the caller owns (a fresh
copy each call), decodes on demand and keeps at most a small, bounded number of frames.
Sources are not thread-safe: use one per thread.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from masklet.errors import FrameSourceError
from masklet.io.frame_source import FrameCache, FrameSource
from masklet.io.video_file import VideoFileSource

__all__ = [
    "FrameSource",
    "FrameCache",
    "VideoFileSource",
    "ImageFolderSource",
    "ArraySource",
    "StreamSource",
    "open_frame_source",
    "IMAGE_SUFFIXES",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _natural_key(name: str) -> tuple[Any, ...]:
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(p), p) if p.isdigit() else (1, p.lower(), p) for p in parts)


def _frame_file_order(names: list[str]) -> list[str]:
    """Integer-named files (`0.jpg`, `00012.png`) by their number, others in natural order."""
    stems = [os.path.splitext(n)[0] for n in names]
    if all(s.isdigit() for s in stems):
        return sorted(names, key=lambda n: (int(os.path.splitext(n)[0]), n))
    return sorted(names, key=_natural_key)


def load_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """An image file as a (H, W, 3) uint8 RGB array (grey, palette and alpha images are converted)."""
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise FrameSourceError(f"{path}: cannot be read as an image ({error})") from error


class ImageFolderSource(FrameSource):
    """A folder of JPEG/PNG frames, ordered by the integer in their names (natural order otherwise)."""

    def __init__(
        self, path: str | os.PathLike[str], *, fps: float | None = None, max_cached_frames: int = 8
    ) -> None:
        folder = Path(path)
        if not folder.is_dir():
            what = "does not exist" if not folder.exists() else "is not a folder"
            raise FrameSourceError(f"{folder}: {what}; expected a folder of JPEG or PNG frames")
        names = [
            entry.name
            for entry in os.scandir(folder)
            if entry.is_file() and os.path.splitext(entry.name)[1].lower() in IMAGE_SUFFIXES
        ]
        if not names:
            raise FrameSourceError(
                f"{folder}: no frames found; expected files named like 00000.jpg "
                f"(suffixes {', '.join(IMAGE_SUFFIXES)})"
            )
        self.paths = tuple(folder / name for name in _frame_file_order(names))
        width, height = self._probe_size(self.paths[0])
        for frame_path in self.paths[1:]:  # headers only: cheap, and a mixed folder fails at open
            size = self._probe_size(frame_path)
            if size != (width, height):
                raise FrameSourceError(
                    f"{frame_path}: is {size[0]}x{size[1]} but {self.paths[0].name} is {width}x{height}; "
                    "all frames of a folder must have the same size"
                )
        super().__init__(name=str(folder), height=height, width=width, fps=fps)
        self._cache = FrameCache(max_cached_frames)

    @staticmethod
    def _probe_size(path: Path) -> tuple[int, int]:
        try:
            with Image.open(path) as image:
                return image.size
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise FrameSourceError(f"{path}: cannot be read as an image ({error})") from error

    @property
    def num_frames(self) -> int:
        return len(self.paths)

    def _read(self, frame: int) -> np.ndarray:
        image = self._cache.get(frame)
        if image is None:
            image = load_rgb(self.paths[frame])
            if image.shape[:2] != (self.height, self.width):
                raise FrameSourceError(
                    f"{self.paths[frame]}: changed size to {image.shape[1]}x{image.shape[0]} since the folder "
                    f"was opened (expected {self.width}x{self.height})"
                )
            self._cache.put(frame, image)
        return image

    def _close(self) -> None:
        self._cache.clear()


def _as_rgb_array(image: Any, *, where: str) -> np.ndarray:
    """Check one in-memory frame: an (H, W, 3) uint8 array or a PIL image (converted to RGB)."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
    if not isinstance(image, np.ndarray):
        raise FrameSourceError(
            f"{where}: expected an (H, W, 3) uint8 numpy array or a PIL image, got {type(image).__name__}"
        )
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[0] == 0 or image.shape[1] == 0:
        raise FrameSourceError(f"{where}: expected an (H, W, 3) RGB array, got shape {image.shape}")
    if image.dtype != np.uint8:
        # Floats are refused rather than guessed ([0, 1] or [0, 255]?) and rounded differently
        # from the uint8 frames every other source yields.
        raise FrameSourceError(
            f"{where}: expected dtype uint8, got {image.dtype}; convert floats in [0, 1] with "
            "(image * 255).round().astype(np.uint8)"
        )
    return image


class ArraySource(FrameSource):
    """Frames already in memory: (H, W, 3) uint8 RGB arrays (or PIL images), all of one size.

    Float arrays are refused: convert them once, knowing their range, so that every source
    yields the same uint8 pixels. The arrays are not copied (do not modify them while tracking).
    """

    def __init__(
        self, frames: Sequence[np.ndarray] | np.ndarray, *, fps: float | None = None, name: str = "<arrays>"
    ) -> None:
        if isinstance(frames, np.ndarray) and frames.ndim == 4:
            frames = list(frames)  # (T, H, W, 3) -> T views
        checked = [_as_rgb_array(image, where=f"{name} frame {i}") for i, image in enumerate(frames)]
        if not checked:
            raise FrameSourceError(f"{name}: the list of frames is empty; give at least one frame")
        height, width = checked[0].shape[:2]
        for i, image in enumerate(checked):
            if image.shape[:2] != (height, width):
                raise FrameSourceError(
                    f"{name} frame {i}: is {image.shape[1]}x{image.shape[0]} but frame 0 is {width}x{height}; "
                    "all frames must have the same size"
                )
        super().__init__(name=name, height=height, width=width, fps=fps)
        self._frames = checked

    @property
    def num_frames(self) -> int:
        return len(self._frames)

    def _read(self, frame: int) -> np.ndarray:
        return self._frames[frame]

    def _close(self) -> None:
        self._frames = []


class StreamSource(FrameSource):
    """A live iterator of frames (camera, network stream), read one by one as they arrive.

    The first frame is read when the source is created (it fixes the frame size). Iteration
    pulls the next frames from the iterator; `get` serves only the last `max_buffered`
    frames that have arrived, and `num_frames` stays None until the iterator is exhausted.
    """

    is_live = True

    def __init__(
        self,
        frames: Iterable[np.ndarray],
        *,
        max_buffered: int = 16,
        fps: float | None = None,
        name: str = "<stream>",
    ) -> None:
        if max_buffered < 1:
            raise ValueError(f"a stream keeps at least the newest frame, got max_buffered={max_buffered}")
        self._iterator = iter(frames)
        self._buffer: deque[np.ndarray] = deque(maxlen=max_buffered)
        self._arrived = 0  # frames pulled from the iterator so far
        self._consumed = 0  # frames handed out by iteration so far
        self._ended = False
        self.name = name
        first = self._pull()
        if first is None:
            raise FrameSourceError(f"{name}: the stream ended before its first frame")
        super().__init__(name=name, height=first.shape[0], width=first.shape[1], fps=fps)

    @property
    def max_buffered(self) -> int:
        return self._buffer.maxlen or 0

    @property
    def num_frames(self) -> int | None:
        return self._arrived if self._ended else None

    @property
    def num_arrived(self) -> int:
        """Frames read from the iterator so far (the newest has index `num_arrived - 1`)."""
        return self._arrived

    @property
    def buffered_frames(self) -> range:
        """The frame indices `get` can serve now."""
        return range(self._arrived - len(self._buffer), self._arrived)

    def _pull(self) -> np.ndarray | None:
        if self._ended:
            return None
        try:
            image = next(self._iterator)
        except StopIteration:
            self._ended = True
            return None
        image = _as_rgb_array(image, where=f"{self.name} frame {self._arrived}")
        if self._arrived and image.shape[:2] != (self.height, self.width):
            raise FrameSourceError(
                f"{self.name} frame {self._arrived}: is {image.shape[1]}x{image.shape[0]} but the stream "
                f"started at {self.width}x{self.height}; all frames must have the same size"
            )
        image.flags.writeable = False  # a read-only view: the producer's array is not altered
        self._buffer.append(image)
        self._arrived += 1
        return image

    def _read(self, frame: int) -> np.ndarray:
        oldest = self._arrived - len(self._buffer)
        if frame >= self._arrived:
            raise FrameSourceError(
                f"{self.name}: frame {frame} has not arrived yet (frames so far: {self._arrived}); "
                "iterate over the source to read further"
            )
        if frame < oldest:
            raise FrameSourceError(
                f"{self.name}: frame {frame} was dropped from the live buffer, which keeps the last "
                f"{self.max_buffered} frames ({oldest}..{self._arrived - 1}); raise max_buffered to keep more"
            )
        return self._buffer[frame - oldest]

    def __iter__(self) -> Iterator[np.ndarray]:
        """Yield frames in order from the first one not yet yielded, pulling new ones as needed."""
        while not self._closed:
            if self._consumed >= self._arrived and self._pull() is None:
                return
            frame = self._consumed
            self._consumed += 1
            yield self.get(frame)

    def _close(self) -> None:
        self._buffer.clear()
        close = getattr(self._iterator, "close", None)
        if callable(close):  # let a generator run its cleanup (release the camera)
            close()


def open_frame_source(
    source: Any, *, max_cached_frames: int = 8, max_buffered: int = 16, fps: float | None = None
) -> FrameSource:
    """A FrameSource for a video path, a frame folder, arrays, an iterator, or a FrameSource (as is).

    `fps` applies to sources whose files carry none (folders, arrays, iterators).
    """
    if isinstance(source, FrameSource):
        return source
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        try:
            path.stat()
        except FileNotFoundError:
            pass  # reported below with the expected kinds of source
        except OSError as exc:  # too long a name, no permission, a loop of links, ...
            shown = str(path) if len(str(path)) <= 120 else f"{str(path)[:117]}..."
            raise FrameSourceError(f"{shown}: cannot be read ({exc.strerror})") from None
        if path.is_dir():
            return ImageFolderSource(path, fps=fps, max_cached_frames=max_cached_frames)
        if not path.exists():
            raise FrameSourceError(f"{path}: no such file or folder; expected a video file or a frame folder")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise FrameSourceError(
                f"{path}: is a single image, not a video; pass a folder of frames or a list of arrays"
            )
        return VideoFileSource(path, max_cached_frames=max_cached_frames)
    if isinstance(source, np.ndarray):
        if source.ndim != 4:
            raise FrameSourceError(
                f"a numpy video must have shape (T, H, W, 3), got {source.shape}; wrap a single frame in a list"
            )
        return ArraySource(source, fps=fps)
    if isinstance(source, (list, tuple)):
        return ArraySource(source, fps=fps)
    if isinstance(source, (bytes, bytearray, dict, set)) or not isinstance(source, Iterable):
        raise FrameSourceError(
            f"cannot read frames from a {type(source).__name__}; expected a video path, a frame folder, "
            "a list of (H, W, 3) uint8 arrays, an iterator of such arrays, or a FrameSource"
        )
    return StreamSource(source, max_buffered=max_buffered, fps=fps)

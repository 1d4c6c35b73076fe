"""Frames and their image features for a tracking session, decoded and encoded on demand.

A small LRU cache holds the features of the last `max_cached` frames; frames
with a prompt not yet written to memory are pinned (their features are needed
again when propagation starts). A live stream is read as far as a frame needs.
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np
from torch import Tensor

from masklet.errors import FrameSourceError
from masklet.io.frames import FrameSource
from masklet.model.sam2 import ImageFeatures, SAM2Model
from masklet.predict.transforms import preprocess_video_frame


class FrameFeed:
    """Random access to a `FrameSource`'s frames and cached image features."""

    def __init__(
        self,
        source: FrameSource,
        model: SAM2Model,
        *,
        max_cached: int = 2,
        owned: bool = True,
        encode: Callable[[Tensor], ImageFeatures] | None = None,
    ) -> None:
        if max_cached < 1:
            raise ValueError(f"max_cached must be at least 1 (the current frame), got {max_cached}")
        self.source = source
        self.max_cached = max_cached
        self._model = model
        self._encode = encode or model.encode_image  # fast mode may give a compiled one
        self._owned = owned
        self._cache: OrderedDict[int, ImageFeatures] = OrderedDict()
        self._pinned: dict[int, ImageFeatures] = {}
        self._stream: Iterator[np.ndarray] | None = iter(source) if source.is_live else None

    @property
    def is_live(self) -> bool:
        return self.source.is_live

    @property
    def num_frames(self) -> int | None:
        """The number of frames; None for a live stream that has not ended."""
        return self.source.num_frames

    @property
    def height(self) -> int:
        return self.source.height

    @property
    def width(self) -> int:
        return self.source.width

    @property
    def num_cached(self) -> int:
        return len(self._cache) + len(self._pinned)

    def _pull_until(self, frame: int) -> bool:
        """Read a live stream until `frame` has arrived; False if it ends first."""
        if self._stream is None:
            return True
        arrived = getattr(self.source, "num_arrived", None)
        while arrived is not None and arrived <= frame:
            if next(self._stream, None) is None:
                return False
            arrived = self.source.num_arrived  # type: ignore[attr-defined]
        return True

    def check(self, frame: object, *, pull: bool = True) -> int:
        """`frame` as a valid index, or FrameSourceError saying which frames exist.

        A live stream is read up to `frame` (with `pull`), else only arrived frames count.
        """
        try:
            index = operator.index(frame)  # type: ignore[arg-type]
        except TypeError:
            raise FrameSourceError(
                f"{self.source.name}: a frame index must be an integer, got {type(frame).__name__} {frame!r}"
            ) from None
        num = self.num_frames
        if num is None and not pull:
            num = getattr(self.source, "num_arrived", None)
        if index < 0 or (num is not None and index >= num) or (pull and not self._pull_until(index)):
            total = self.num_frames
            if total is not None:
                valid = f"0..{total - 1}"
            else:
                valid = f"0..{getattr(self.source, 'num_arrived', 0) - 1} so far (a live stream)"
            raise FrameSourceError(
                f"{self.source.name}: frame {index} is past the end; valid frames are {valid}"
            )
        return index

    def exists(self, frame: int) -> bool:
        """Whether `frame` is in the video (reads a live stream up to it)."""
        if frame < 0:
            return False
        num = self.num_frames
        if num is not None:
            return frame < num
        return self._pull_until(frame)

    def features(self, frame: int) -> ImageFeatures:
        """Image features of one frame (batch 1), from the cache or freshly encoded."""
        if frame in self._pinned:
            return self._pinned[frame]
        if frame in self._cache:
            self._cache.move_to_end(frame)
            return self._cache[frame]
        image = self.source.get(frame)
        size = self._model.config.image_size
        pixels = preprocess_video_frame(image, size)[None].to(self._model.device)
        full = self._encode(pixels)
        # only the lowest level's position encoding is read later; the larger ones are dropped
        features = ImageFeatures(backbone_fpn=full.backbone_fpn, vision_pos_enc=full.vision_pos_enc[-1:])
        self._cache[frame] = features
        while len(self._cache) > self.max_cached:
            self._cache.popitem(last=False)
        return features

    def pin(self, frame: int) -> None:
        """Keep `frame`'s features until `unpin` (a prompt awaits its memory encoding)."""
        self._pinned[frame] = self.features(frame)
        self._cache.pop(frame, None)

    def unpin(self, frame: int) -> None:
        """Return a pinned frame's features to the LRU cache."""
        features = self._pinned.pop(frame, None)
        if features is not None:
            self._cache[frame] = features
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)

    def close(self) -> None:
        self._cache.clear()
        self._pinned.clear()
        if self._owned:
            self.source.close()

"""Which frames of a stored video the data engine annotates, and checks that frames are the video's.

SA-V annotates masks at about 6 fps: every `frame_stride(fps)`-th frame (4 at 24 fps). The
phases and auto masklets track only those frames unless told otherwise, through
`EveryNthFrame`. Frames handed in by a caller (a decoded clip, a live source) must be the
stored video's: same size and frame count.
"""

from __future__ import annotations

import math

import numpy as np

from masklet.engine.records import Video
from masklet.engine.store_checks import InvalidEditError
from masklet.errors import FrameSourceError
from masklet.io.frames import FrameSource

__all__ = ["ANNOTATION_FPS", "EveryNthFrame", "annotation_stride", "check_frames_match", "frame_stride"]

ANNOTATION_FPS = 6.0  # SA-V masks are annotated at 6 fps


def frame_stride(fps: float, annotation_fps: float = ANNOTATION_FPS) -> int:
    """Annotate every n-th frame so that masks come at about `annotation_fps` (24 fps -> 4)."""
    return max(1, round(fps / annotation_fps))


def annotation_stride(video: Video, stride: int | None) -> int:
    """`stride` checked (a positive integer), or the video's default when None."""
    if stride is None:
        return frame_stride(video.fps)
    if isinstance(stride, bool) or not isinstance(stride, int) or stride < 1:
        raise InvalidEditError(
            f"stride must be a positive integer (annotate every n-th frame), got {stride!r}"
        )
    return stride


def check_frames_match(video: Video, frames: FrameSource) -> None:
    """FrameSourceError unless `frames` has the video's size and frame count."""
    if (frames.height, frames.width, frames.num_frames) != (video.height, video.width, video.frame_count):
        raise FrameSourceError(
            f"{frames.name}: {frames.num_frames} frames of {frames.width}x{frames.height} (w x h), but video "
            f"{video.id} has {video.frame_count} frames of {video.width}x{video.height}; pass the video's own frames"
        )


class EveryNthFrame(FrameSource):
    """Frames 0, n, 2n, ... of another source, which stays open (its owner closes it)."""

    def __init__(self, base: FrameSource, stride: int) -> None:
        fps = None if base.fps is None else base.fps / stride
        super().__init__(name=f"{base.name}[::{stride}]", height=base.height, width=base.width, fps=fps)
        self._base, self._stride = base, stride

    @property
    def num_frames(self) -> int:
        return math.ceil(len(self._base) / self._stride)

    def _read(self, frame: int) -> np.ndarray:
        return self._base.get(frame * self._stride)

    def _close(self) -> None:
        pass

"""`VideoFileSource`: a video file decoded lazily with PyAV, with exact random access.

Frame `i` is the i-th frame in presentation order. The index that maps frames to
presentation timestamps (pts) and keyframes comes from demuxing the packets (no decoding),
or from one full decode when the packets lack timestamps or disagree with the frame count
the container states. A frame is found by seeking to the last keyframe at or before it and
decoding forward; a target shortly ahead of the decoder is reached by decoding forward.
"""

from __future__ import annotations

import bisect
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from masklet.errors import FrameSourceError
from masklet.io.frame_source import FrameCache, FrameSource

log = logging.getLogger(__name__)

__all__ = ["VideoFileSource"]


@dataclass(frozen=True, slots=True)
class FrameIndex:
    """Where each frame of a video stream sits."""

    num_frames: int
    pts: tuple[int, ...] | None  # (T,) ascending presentation timestamps; None: the file has none
    keyframes: tuple[int, ...]  # ascending frame indices decoding may start from; always holds 0
    from_packets: bool  # built by demuxing only (True) or by decoding every frame (False)
    _frame_of_pts: dict[int, int] = field(default_factory=dict, repr=False)

    @classmethod
    def from_timestamps(cls, pts: list[int], key_pts: list[int], *, from_packets: bool) -> FrameIndex:
        ordered = tuple(sorted(pts))
        frame_of_pts = {p: i for i, p in enumerate(ordered)}
        keyframes = tuple(sorted({0} | {frame_of_pts[p] for p in key_pts}))
        return cls(len(ordered), ordered, keyframes, from_packets, frame_of_pts)

    def frame_of(self, pts: int | None) -> int | None:
        return None if pts is None else self._frame_of_pts.get(pts)

    def keyframe_before(self, frame: int) -> int:
        return self.keyframes[bisect.bisect_right(self.keyframes, frame) - 1]


class _IndexMismatch(Exception):
    """The decoder did not produce the frame the index promised."""


class VideoFileSource(FrameSource):
    """A video file (mp4, mov, mkv, webm, ...) read frame by frame, never decoded as a whole.

    The file is checked when opened (its first frame is decoded), so a missing, corrupt or
    empty file fails here. Up to `max_cached_frames` decoded frames are kept; a seek also
    keeps the frames just before its target, which makes reverse iteration cheaper.
    """

    def __init__(self, path: str | os.PathLike[str], *, max_cached_frames: int = 8) -> None:
        self.path = Path(path)
        self.name = str(self.path)
        if not self.path.is_file():
            what = "is a folder, not a video file" if self.path.is_dir() else "no such file"
            raise FrameSourceError(f"{self.path}: {what}")
        self._cache = FrameCache(max_cached_frames)
        self._container, self._stream = self._open()
        self._decoder: Iterator[av.VideoFrame] | None = None
        self._next_frame: int | None = None  # frame the decoder yields next; None: unknown, seek first
        self._seek_floor = 0  # the keyframe of the last seek; frames before it are not trusted
        self._index: FrameIndex | None = None
        try:
            height, width = self._probe_first_frame()
        except BaseException:
            self._container.close()
            raise
        rate = self._stream.average_rate or self._stream.guessed_rate
        super().__init__(name=str(self.path), height=height, width=width, fps=float(rate) if rate else None)

    def _open(self) -> tuple[av.container.InputContainer, av.video.stream.VideoStream]:
        try:
            container = av.open(str(self.path), mode="r")
        except (av.FFmpegError, OSError, ValueError) as error:
            raise FrameSourceError(
                f"{self.path}: cannot be opened as a video ({error}); the file is damaged, truncated "
                "or not a video"
            ) from error
        if not container.streams.video:
            container.close()
            raise FrameSourceError(f"{self.path}: has no video stream")
        return container, container.streams.video[0]

    def _probe_first_frame(self) -> tuple[int, int]:
        """Decode the first frame, so that unreadable files fail at open; its (height, width)."""
        decoder = self._container.decode(self._stream)
        try:
            first = next(decoder, None)
        except av.FFmpegError as error:
            raise FrameSourceError(f"{self.path}: the video cannot be decoded ({error})") from error
        finally:
            decoder.close()
        if first is None:
            raise FrameSourceError(f"{self.path}: the video contains no frames")
        return first.height, first.width

    @property
    def num_frames(self) -> int:
        return self.frame_index.num_frames

    @property
    def frame_index(self) -> FrameIndex:
        """The frame/timestamp index, built on first use."""
        if self._index is None:
            self._index = self._scan_packets() or self._scan_frames()
        return self._index

    def frame_time(self, frame: int) -> float | None:
        """Presentation time of `frame` in seconds (exact for variable frame rates); None if unknown."""
        index = self.frame_index
        frame = self._check_index(frame)
        if index.pts is not None and self._stream.time_base is not None:
            return float(index.pts[frame] * self._stream.time_base)
        return frame / self.fps if self.fps else None

    def _scan_packets(self) -> FrameIndex | None:
        """Index the frames by demuxing (cheap); None when the packets cannot be trusted."""
        container, stream = self._open()
        pts: list[int] = []
        key_pts: list[int] = []
        try:
            stated = stream.frames
            for packet in container.demux(stream):
                if packet.size == 0 or packet.is_discard:  # end-of-stream marker / cut by an edit list
                    continue
                if packet.pts is None:
                    return None
                pts.append(packet.pts)
                if packet.is_keyframe:
                    key_pts.append(packet.pts)
        except av.FFmpegError as error:
            log.warning(
                "%s: demuxing failed after %d packets (%s); indexing by decoding", self.path, len(pts), error
            )
            return None
        finally:
            container.close()
        if not pts or len(set(pts)) != len(pts) or (stated and stated != len(pts)):
            return None
        return FrameIndex.from_timestamps(pts, key_pts, from_packets=True)

    def _scan_frames(self) -> FrameIndex:
        """Index the frames by decoding all of them once (metadata missing or wrong)."""
        container, stream = self._open()
        pts: list[int | None] = []
        key_pts: list[int | None] = []
        try:
            stated = stream.frames
            for frame in container.decode(stream):
                pts.append(frame.pts)
                if frame.key_frame:
                    key_pts.append(frame.pts)
        except av.FFmpegError as error:
            if not pts:
                raise FrameSourceError(f"{self.path}: the video cannot be decoded ({error})") from error
            log.warning(
                "%s: decoding stops at frame %d (%s); using the frames before it", self.path, len(pts), error
            )
        finally:
            container.close()
        if not pts:
            raise FrameSourceError(f"{self.path}: the video contains no frames")
        if stated and stated != len(pts):
            log.warning("%s: the container states %d frames, decoding found %d", self.path, stated, len(pts))
        known = [p for p in pts if p is not None]
        if len(known) != len(pts) or len(set(known)) != len(known):
            # No usable timestamps: frames are counted from the start, and every backward access rewinds.
            return FrameIndex(len(pts), None, (0,), from_packets=False)
        return FrameIndex.from_timestamps(known, [p for p in key_pts if p is not None], from_packets=False)

    def _read(self, frame: int) -> np.ndarray:
        image = self._cache.get(frame)
        if image is not None:
            return image
        try:
            try:
                return self._decode_to(frame)
            except _IndexMismatch:
                if not self.frame_index.from_packets:
                    raise
                log.warning("%s: packet timestamps do not match the decoded frames; re-indexing", self.path)
                self._index = self._scan_frames()
                self._next_frame = None
                return self._decode_to(frame)
        except _IndexMismatch:
            self._next_frame = None
            raise FrameSourceError(
                f"{self.path}: frame {frame} could not be decoded; the file may be damaged"
            ) from None
        except av.FFmpegError as error:
            self._next_frame = None
            raise FrameSourceError(f"{self.path}: decoding frame {frame} failed ({error})") from error

    def _decode_to(self, target: int) -> np.ndarray:
        index = self.frame_index
        start = index.keyframe_before(target)
        # Decode forward when no keyframe lies between the decoder and the target; seek otherwise.
        if self._next_frame is None or not start <= self._next_frame <= target:
            self._seek(start)
        image = self._decode_forward(target)
        if image is None and self._seek_floor != 0:
            self._seek(0)  # the seek landed past the target: rewind and decode from the start
            image = self._decode_forward(target)
        if image is None:
            raise _IndexMismatch
        return image

    def _seek(self, frame: int) -> None:
        """Position the decoder at keyframe `frame` (0 reopens the file: a sure way to the start)."""
        if self._decoder is not None:
            self._decoder.close()
        index = self.frame_index
        if frame == 0 or index.pts is None:
            self._container.close()
            self._container, self._stream = self._open()
            frame = 0
        else:
            self._container.seek(index.pts[frame], stream=self._stream, backward=True)
        self._decoder = self._container.decode(self._stream)
        self._seek_floor = frame
        self._next_frame = 0 if frame == 0 else None

    def _decode_forward(self, target: int) -> np.ndarray | None:
        """Decode until frame `target`, caching the frames just before it; None if it never comes."""
        assert self._decoder is not None
        index = self.frame_index
        keep_from = max(self._seek_floor, target - max(self._cache.max_items, 1) + 1)
        for av_frame in self._decoder:
            current = self._next_frame if index.pts is None else index.frame_of(av_frame.pts)
            if current is None or current > target:
                self._next_frame = None
                return None
            self._next_frame = current + 1
            if current >= keep_from:
                image = av_frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
                self._cache.put(current, image)
                if current == target:
                    return image
        self._next_frame = None  # end of stream: the decoder is drained
        return None

    def _close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        self._container.close()
        self._cache.clear()

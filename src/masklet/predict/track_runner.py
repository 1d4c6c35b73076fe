"""One loop from a tracking session to per-frame binary masks and RLE, for every front end.

`track_masks(session, ...)` propagates and yields a `TrackedFrame` per tracked frame: the
frame's index in the *video* (a session over every n-th frame maps back with `frame_step`),
the object ids and their masks (logits > 0) on the CPU, RLE on demand. The CLI's `track`,
the data engine's phases and auto masklets, and the interactive evaluation all use it, so
the threshold, the frame mapping and the progress bar are written once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from torch import Tensor

from masklet.errors import SessionError
from masklet.io.masks import RleMask

__all__ = ["PropagatingSession", "TrackedFrame", "track_masks"]


class PropagatingSession(Protocol):
    """What the runner needs of a session (`masklet.predict.video.TrackingSession`)."""

    @property
    def num_frames(self) -> int: ...

    def propagate(
        self, start: int | None = None, max_frames: int | None = None, reverse: bool = False
    ) -> Any: ...


@dataclass(frozen=True, slots=True)
class TrackedFrame:
    """One tracked frame: `masks[i]` is object `obj_ids[i]`'s (H, W) bool mask."""

    frame: int  # in the video
    obj_ids: tuple[int, ...]
    masks: np.ndarray  # (N, H, W) bool
    logits: Tensor | np.ndarray = field(repr=False)  # (N, H, W) as the session returned them
    session_frame: int = -1  # in the session (differs from `frame` when frame_step > 1)

    def mask(self, obj_id: int) -> np.ndarray:
        return self.masks[self._index(obj_id)]

    def rle(self, obj_id: int) -> RleMask:
        return RleMask.from_mask(self.mask(obj_id))

    def rles(self) -> dict[int, RleMask]:
        return {obj_id: RleMask.from_mask(m) for obj_id, m in zip(self.obj_ids, self.masks, strict=True)}

    def _index(self, obj_id: int) -> int:
        try:
            return self.obj_ids.index(obj_id)
        except ValueError:
            raise SessionError(f"object {obj_id} is not tracked on frame {self.frame}") from None


def _binary(logits: Any) -> np.ndarray:
    """(N, H, W) bool masks from a session's logits (a tensor on any device, or an array)."""
    if isinstance(logits, Tensor):
        return (logits > 0).cpu().numpy()
    return np.asarray(logits) > 0


def frames_to_track(num_frames: int, start: int, reverse: bool, max_frames: int | None) -> int:
    """How many frames a propagation from `start` visits (for a progress bar's total)."""
    total = start + 1 if reverse else num_frames - start
    return total if max_frames is None else min(total, max_frames)


def track_masks(
    session: PropagatingSession,
    start: int | None = None,
    *,
    reverse: bool = False,
    max_frames: int | None = None,
    frame_step: int = 1,
    progress: bool | str = False,
) -> Iterator[TrackedFrame]:
    """Propagate `session` from `start` (session frames; default: its first prompted frame).

    frame_step: the session holds every `frame_step`-th video frame; yielded frames are in
    video frames. progress: a tqdm bar (its label when a string) over the frames to track.
    """
    if frame_step < 1:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
    outputs = session.propagate(start, max_frames, reverse)
    bar = None
    if progress:
        from tqdm import tqdm

        total = None if start is None else frames_to_track(session.num_frames, start, reverse, max_frames)
        label = progress if isinstance(progress, str) else "tracking"
        bar = tqdm(total=total, desc=label, unit="frame")
    try:
        for s_frame, obj_ids, logits in outputs:
            masks = _binary(logits)
            yield TrackedFrame(
                frame=int(s_frame) * frame_step,
                obj_ids=tuple(int(i) for i in obj_ids),
                masks=masks,
                logits=logits,
                session_frame=int(s_frame),
            )
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()

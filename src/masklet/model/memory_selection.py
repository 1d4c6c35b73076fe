"""Which memories an object reads on a frame: SAM 2's selection rule, from frame indices alone.

The conditioning (prompted) frames, the `num_maskmem - 1` most recent tracked frames in
the tracking direction (with the temporal stride), and up to `max_obj_ptrs_in_encoder`
object pointers. This is the model's own rule (training and inference read memory the same
way); where the tensors are kept is the caller's business (`masklet.predict.memory_bank`
for a session, a list of a clip's frames in training).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from masklet.configs import TrackingConfig


@dataclass(frozen=True, slots=True)
class BankRules:
    """The selection switches of a `TrackingConfig`."""

    num_maskmem: int = 7
    stride: int = 1
    max_cond_frames: int = -1  # -1: every conditioning frame
    use_obj_ptrs: bool = True
    max_obj_ptrs: int = 16
    only_past_ptrs: bool = True
    signed_ptr_offsets: bool = True

    @classmethod
    def from_config(cls, cfg: TrackingConfig) -> BankRules:
        return cls(
            num_maskmem=cfg.num_maskmem,
            stride=cfg.memory_temporal_stride_for_eval,
            max_cond_frames=cfg.max_cond_frames_in_attn,
            use_obj_ptrs=cfg.use_obj_ptrs_in_encoder,
            max_obj_ptrs=cfg.max_obj_ptrs_in_encoder,
            only_past_ptrs=cfg.only_obj_ptrs_in_the_past_for_eval,
            signed_ptr_offsets=cfg.use_signed_tpos_enc_to_obj_ptrs,
        )


@dataclass(frozen=True, slots=True)
class MemorySelection:
    """The memories one object reads on one frame, in attention order."""

    # (tpos, frame): tpos 0 for conditioning frames, 1..num_maskmem-1 for recent ones (1 the oldest)
    spatial: tuple[tuple[int, int], ...]
    pointers: tuple[tuple[int, int], ...]  # (offset, frame): frame distance for the temporal encoding
    ptr_norm: int  # the distance that maps to 1.0 in the pointers' temporal encoding

    @property
    def layout(self) -> tuple[int, int]:
        """(spatial frames, pointers): objects with equal layouts can share one batch."""
        return len(self.spatial), len(self.pointers)


def closest_cond_frames(frame: int, cond_frames: Sequence[int], max_num: int) -> tuple[list[int], list[int]]:
    """(selected, unselected) conditioning frames: all if max_num is -1 or enough, else the
    closest before `frame`, the closest at or after it, then the nearest others."""
    if max_num == -1 or len(cond_frames) <= max_num:
        return list(cond_frames), []
    selected: list[int] = []
    before = [t for t in cond_frames if t < frame]
    after = [t for t in cond_frames if t >= frame]
    if before:
        selected.append(max(before))
    if after:
        selected.append(min(after))
    rest = sorted((t for t in cond_frames if t not in selected), key=lambda t: abs(t - frame))
    selected += rest[: max_num - len(selected)]
    return selected, [t for t in cond_frames if t not in selected]


def recent_frame_slots(frame: int, *, num_maskmem: int, stride: int, reverse: bool) -> list[tuple[int, int]]:
    """(tpos, frame) for tpos 1..num_maskmem-1: the frame just before (in the tracking
    direction) gets the last slot; the others come from every `stride`-th frame."""
    slots = []
    for tpos in range(1, num_maskmem):
        back = num_maskmem - tpos  # how many steps behind the current frame
        if back == 1:
            prev = frame + 1 if reverse else frame - 1
        elif reverse:
            prev = -(-(frame + 2) // stride) * stride + (back - 2) * stride
        else:
            prev = ((frame - 2) // stride) * stride - (back - 2) * stride
        slots.append((tpos, prev))
    return slots


def pointer_limit(num_frames: int | None, max_obj_ptrs: int) -> int:
    """How many pointers a frame may read: the config's cap, or fewer in a shorter video.

    A live stream (length unknown) uses the cap, so its results do not depend on when it ends.
    """
    return max_obj_ptrs if num_frames is None else min(num_frames, max_obj_ptrs)


def select_memory(
    frame: int,
    cond_frames: Sequence[int],
    tracked_frames: Collection[int],
    *,
    rules: BankRules,
    reverse: bool,
    num_frames: int | None,
) -> MemorySelection:
    """The official memory selection for `frame`, from frame indices alone.

    cond_frames: the conditioning frames in insertion order; tracked_frames: frames
    with a tracking (non-conditioning) memory; num_frames: None for a live stream.
    """
    selected, unselected = closest_cond_frames(frame, cond_frames, rules.max_cond_frames)
    spare = set(unselected)  # unselected conditioning frames may still fill a recent slot
    spatial = [(0, t) for t in selected]
    for tpos, prev in recent_frame_slots(
        frame, num_maskmem=rules.num_maskmem, stride=rules.stride, reverse=reverse
    ):
        if prev in tracked_frames or prev in spare:
            spatial.append((tpos, prev))

    limit = pointer_limit(num_frames, rules.max_obj_ptrs)
    pointers: list[tuple[int, int]] = []
    if rules.use_obj_ptrs:
        sign = -1 if reverse else 1
        for t in selected:
            if rules.only_past_ptrs and (t < frame if reverse else t > frame):
                continue
            pointers.append(((frame - t) * sign if rules.signed_ptr_offsets else abs(frame - t), t))
        for dist in range(1, limit):
            t = frame + dist if reverse else frame - dist
            if t < 0 or (num_frames is not None and t >= num_frames):
                break
            if t in tracked_frames or t in spare:
                pointers.append((dist, t))
    # a one-frame video would divide by zero; any positive norm gives the same zero offsets
    return MemorySelection(spatial=tuple(spatial), pointers=tuple(pointers), ptr_norm=max(limit - 1, 1))

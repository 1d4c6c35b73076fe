"""What one tracked object remembers, and which memories the next frame reads.

Two parts. `select_memory` is the official selection rule as a pure function of
frame indices: the conditioning (prompted) frames, the `num_maskmem - 1` most
recent tracked frames in the tracking direction (with the temporal stride), and
up to `max_obj_ptrs_in_encoder` object pointers. `MemoryBank` stores the tensors
with bounded RAM: conditioning memories and their object pointers stay in RAM;
tracked-frame memories beyond `max_in_memory` are spilled with their pointers to
the session's disk folder (bit-exact), because a later pass (reverse,
re-propagation, a correction) may still read them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from masklet.configs import TrackingConfig
from masklet.predict.spill import SpillDir


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


class MemoryBank:
    """One object's memories: conditioning frames, tracked frames and their object pointers.

    Memories are (Cm, h, w) bfloat16 tensors, pointers (C,). At most `max_in_memory`
    tracked frames keep their memory and pointer in RAM (least recently used first
    out); the rest live in `spill` and are read back on demand, so the tensors a bank
    holds do not grow with the video. Without `spill` the evicted frames are dropped
    (they no longer count as tracked).
    """

    def __init__(
        self, rules: BankRules, *, spill: SpillDir | None = None, max_in_memory: int = 16, name: str = "bank"
    ) -> None:
        if max_in_memory < 0:
            raise ValueError(f"max_in_memory must be 0 or more, got {max_in_memory}")
        self.rules = rules
        self.max_in_memory = max_in_memory
        self._spill = spill
        self._name = name
        self._cond: dict[int, Tensor] = {}  # frame -> memory, in insertion order
        self._recent: OrderedDict[int, Tensor] = OrderedDict()  # tracked frames held in RAM, LRU order
        self._spilled: set[int] = set()  # tracked frames whose memory and pointer are on disk
        self._device: torch.device | None = None  # where spilled tensors go back to
        self._ptrs: dict[int, Tensor] = {}  # frame -> object pointer (frames whose memory is in RAM)

    @property
    def cond_frames(self) -> tuple[int, ...]:
        return tuple(self._cond)

    @property
    def tracked_frames(self) -> frozenset[int]:
        """Frames with a tracking (non-conditioning) memory, in RAM or on disk."""
        return frozenset(self._recent.keys() | self._spilled)

    @property
    def num_in_memory(self) -> int:
        """Memory tensors held in RAM (conditioning and tracked)."""
        return len(self._cond) + len(self._recent)

    def __contains__(self, frame: int) -> bool:
        return frame in self._cond or frame in self._recent or frame in self._spilled

    def is_cond(self, frame: int) -> bool:
        return frame in self._cond

    def _key(self, frame: int) -> str:
        return f"{self._name}-m{frame}"

    def _ptr_key(self, frame: int) -> str:
        return f"{self._name}-p{frame}"

    def add(self, frame: int, memory: Tensor, obj_ptr: Tensor, *, cond: bool) -> bool:
        """Store a frame's memory; False if refused.

        A conditioning memory replaces a tracked one on the same frame. A tracked
        memory for a conditioning frame is refused (parity: the official predictor
        drops it too).
        """
        if not cond and frame in self._cond:
            return False
        self._forget_tracked(frame)
        self._ptrs[frame] = obj_ptr
        if cond:
            self._cond[frame] = memory
        else:
            self._recent[frame] = memory
            self._evict()
        return True

    def demote(self, frame: int) -> bool:
        """Keep a conditioning frame's memory as a tracked frame's (its prompts were cleared); False if none."""
        memory = self._cond.pop(frame, None)
        if memory is None:
            return False
        self._recent[frame] = memory
        self._evict()
        return True

    def select(self, frame: int, *, reverse: bool, num_frames: int | None) -> MemorySelection:
        """What `frame` reads (see `select_memory`)."""
        tracked = _TrackedView(self._recent, self._spilled)
        return select_memory(
            frame, tuple(self._cond), tracked, rules=self.rules, reverse=reverse, num_frames=num_frames
        )

    def memory(self, frame: int) -> Tensor:
        """The (Cm, h, w) memory of `frame` (read back from disk if it was spilled)."""
        if frame in self._cond:
            return self._cond[frame]
        if frame in self._recent:
            self._recent.move_to_end(frame)
            return self._recent[frame]
        if frame in self._spilled and self._spill is not None:
            return self._spill.load(self._key(frame), device=self._device)
        raise KeyError(f"no memory stored for frame {frame}")

    def pointer(self, frame: int) -> Tensor:
        """The (C,) object pointer of `frame` (read back from disk if it was spilled)."""
        ptr = self._ptrs.get(frame)
        if ptr is not None:
            return ptr
        if frame in self._spilled and self._spill is not None:
            return self._spill.load(self._ptr_key(frame), device=self._device)
        raise KeyError(f"no object pointer stored for frame {frame}")

    def clear(self) -> None:
        for frame in self._spilled:
            if self._spill is not None:
                self._spill.delete(self._key(frame))
                self._spill.delete(self._ptr_key(frame))
        self._cond.clear()
        self._recent.clear()
        self._spilled.clear()
        self._ptrs.clear()

    def _forget_tracked(self, frame: int) -> None:
        self._recent.pop(frame, None)
        if frame in self._spilled:
            self._spilled.discard(frame)
            if self._spill is not None:
                self._spill.delete(self._key(frame))
                self._spill.delete(self._ptr_key(frame))

    def _evict(self) -> None:
        while len(self._recent) > self.max_in_memory:
            frame, memory = self._recent.popitem(last=False)
            ptr = self._ptrs.pop(frame)
            if self._spill is not None:
                self._device = memory.device
                self._spill.save(self._key(frame), memory)
                self._spill.save(self._ptr_key(frame), ptr)
                self._spilled.add(frame)


class _TrackedView(Collection[int]):
    """Membership over RAM and disk frames without building a set each step."""

    __slots__ = ("_ram", "_disk")

    def __init__(self, ram: OrderedDict[int, Tensor], disk: set[int]) -> None:
        self._ram, self._disk = ram, disk

    def __contains__(self, frame: object) -> bool:
        return frame in self._ram or frame in self._disk

    def __len__(self) -> int:
        return len(self._ram) + len(self._disk)

    def __iter__(self):  # type: ignore[no-untyped-def]
        yield from self._ram
        yield from self._disk

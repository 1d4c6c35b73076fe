"""What one tracked object remembers.

Which memories a frame reads is the model's rule (`masklet.model.memory_selection`);
`MemoryBank` stores the tensors with bounded RAM: conditioning memories and their
object pointers stay in RAM; tracked-frame memories beyond `max_in_memory` are spilled
with their pointers to the session's disk folder (bit-exact), because a later pass
(reverse, re-propagation, a correction) may still read them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection

import torch
from torch import Tensor

from masklet.model.memory_selection import BankRules, MemorySelection, select_memory
from masklet.predict.spill import SpillDir

__all__ = ["BankRules", "MemoryBank", "MemorySelection", "select_memory"]


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

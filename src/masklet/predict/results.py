"""Per-frame tracking results with bounded RAM: low-res logits, spilled to disk beyond a cap.

A result is what the model predicted for one object on one frame: the low-res
mask logits (4x the embedding grid, 256 x 256 at 1024 input; hole-filled) and
the object score. The logits are kept exactly (float32), because a later click
on that frame feeds them back to the model; masks at video resolution are made
on demand by bilinear upsampling. At most `max_in_memory` logit maps stay in
RAM; older ones move to the session's spill folder.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from masklet.predict.spill import SpillDir


@dataclass(frozen=True, slots=True)
class FrameResult:
    """One object's prediction on one frame."""

    frame: int
    obj_id: int
    low_res_logits: Tensor  # (1, 1, 4h, 4w) float32, after hole filling
    obj_score_logit: float  # > 0: the object is judged present

    @property
    def present(self) -> bool:
        return self.obj_score_logit > 0

    def logits(self, height: int, width: int) -> Tensor:
        """(H, W) float32 logits at video resolution (bilinear, like the official predictor)."""
        return upsample(self.low_res_logits, height, width)[0, 0]


def upsample(low_res_logits: Tensor, height: int, width: int) -> Tensor:
    """(N, 1, h, w) -> (N, 1, H, W) bilinear, corners not aligned."""
    if tuple(low_res_logits.shape[-2:]) == (height, width):
        return low_res_logits
    return F.interpolate(low_res_logits, size=(height, width), mode="bilinear", align_corners=False)


class ResultStore:
    """Results by (frame, obj_id); RAM holds at most `max_in_memory` logit maps."""

    def __init__(self, spill: SpillDir | None = None, *, max_in_memory: int = 64) -> None:
        if max_in_memory < 0:
            raise ValueError(f"max_in_memory must be 0 or more, got {max_in_memory}")
        self.max_in_memory = max_in_memory
        self._spill = spill
        self._scores: dict[tuple[int, int], float] = {}  # every stored result
        self._ram: OrderedDict[tuple[int, int], Tensor] = OrderedDict()  # LRU of logit maps
        self._device: dict[tuple[int, int], torch.device] = {}

    def __len__(self) -> int:
        return len(self._scores)

    def __contains__(self, key: tuple[int, int]) -> bool:
        return key in self._scores

    @property
    def num_in_memory(self) -> int:
        return len(self._ram)

    @staticmethod
    def _name(frame: int, obj_id: int) -> str:
        return f"r{frame}-o{obj_id}"

    def put(self, frame: int, obj_id: int, low_res_logits: Tensor, obj_score_logit: float) -> None:
        """Store (or replace) a result; `low_res_logits` is (1, 1, h, w) or (h, w)."""
        key = (frame, obj_id)
        logits = low_res_logits.reshape(1, 1, *low_res_logits.shape[-2:])
        if self._spill is not None:
            self._spill.delete(self._name(*key))
        self._scores[key] = float(obj_score_logit)
        self._device[key] = logits.device
        self._ram[key] = logits
        self._ram.move_to_end(key)
        while len(self._ram) > self.max_in_memory:
            old, old_logits = self._ram.popitem(last=False)
            if self._spill is None:
                del self._scores[old], self._device[old]
            else:
                self._spill.save(self._name(*old), old_logits)

    def get(self, frame: int, obj_id: int) -> FrameResult | None:
        key = (frame, obj_id)
        if key not in self._scores:
            return None
        logits = self._ram.get(key)
        if logits is None:
            assert self._spill is not None  # without a spill folder evicted results are dropped
            logits = self._spill.load(self._name(*key), device=self._device[key])
        else:
            self._ram.move_to_end(key)
        return FrameResult(
            frame=frame, obj_id=obj_id, low_res_logits=logits, obj_score_logit=self._scores[key]
        )

    def frames(self, obj_id: int | None = None) -> list[int]:
        """Frames with a result (for one object, or any), ascending."""
        return sorted({f for f, o in self._scores if obj_id is None or o == obj_id})

    def remove_object(self, obj_id: int) -> None:
        for key in [k for k in self._scores if k[1] == obj_id]:
            self._drop(key)

    def clear(self) -> None:
        for key in list(self._scores):
            self._drop(key)

    def _drop(self, key: tuple[int, int]) -> None:
        del self._scores[key], self._device[key]
        if self._ram.pop(key, None) is None and self._spill is not None:
            self._spill.delete(self._name(*key))

"""A tracking session's per-object state and the steps that update it.

`TrackedObject` holds one object's clicks, memory bank, tracked frames and the
outputs of prompts not yet written to memory. `track_objects` runs one
propagation step for every object on a frame, batching the objects whose
memories have the same layout.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import Tensor

from masklet.configs import TrackingConfig
from masklet.model.memory_selection import BankRules, MemorySelection
from masklet.model.sam2 import SAM2Model
from masklet.model.types import ImageFeatures, MemoryInputs, StepOutput
from masklet.predict.mask_ops import connected_components
from masklet.predict.memory_bank import MemoryBank
from masklet.predict.results import ResultStore
from masklet.predict.spill import SpillDir

HOLE_FILL_LOGIT = 0.1  # parity: the official video predictor fills holes with this small positive score


def fill_holes(low_res_logits: Tensor, max_area: int) -> Tensor:
    """Background regions of at most `max_area` pixels (8-connected) become foreground.

    (N, 1, h, w) -> same. The official predictor does this only where its CUDA
    extension is built; here it runs on every device (scipy on the CPU).
    """
    if max_area <= 0:
        return low_res_logits
    labels, areas = connected_components(low_res_logits <= 0)
    holes = (labels > 0) & (areas <= max_area)
    return torch.where(holes, HOLE_FILL_LOGIT, low_res_logits)


@dataclass(frozen=True, slots=True)
class PendingOutput:
    """A prompt's output awaiting its memory encoding (at the next propagation)."""

    cond: bool  # becomes a conditioning frame
    logits: Tensor  # (1, 1, 4h, 4w) hole-filled low-res logits
    obj_ptr: Tensor  # (1, C)
    obj_score_logits: Tensor  # (1, 1)


@dataclass(slots=True)
class TrackedObject:
    """One object of a session."""

    obj_id: int
    bank: MemoryBank
    points: dict[int, tuple[Tensor, Tensor]] = field(default_factory=dict)  # frame -> (1, P, 2), (1, P)
    tracked: dict[int, bool] = field(default_factory=dict)  # frame -> tracked in reverse
    prompted: set[int] = field(default_factory=set)  # frames that received clicks, a box or a mask
    pending: dict[int, PendingOutput] = field(default_factory=dict)

    @classmethod
    def new(cls, obj_id: int, rules: BankRules, *, spill: SpillDir, max_in_memory: int) -> TrackedObject:
        bank = MemoryBank(rules, spill=spill, max_in_memory=max_in_memory, name=f"o{obj_id}")
        return cls(obj_id=obj_id, bank=bank)

    def output(self, frame: int, results: ResultStore) -> Tensor | None:
        """The latest (1, 1, 4h, 4w) low-res logits on `frame`: a pending prompt's, else the stored."""
        pending = self.pending.get(frame)
        if pending is not None:
            return pending.logits
        stored = results.get(frame, self.obj_id)
        return None if stored is None else stored.low_res_logits

    def prompt_step(
        self,
        model: SAM2Model,
        cfg: TrackingConfig,
        features: ImageFeatures,
        *,
        frame: int,
        is_init: bool,
        coords: Tensor | None,
        labels: Tensor | None,
        mask: Tensor | None,
        prev_logits: Tensor | None,
        num_frames: int | None,
    ) -> StepOutput:
        """Run the model for a prompt on `frame` (memory read in the direction it was tracked)."""
        memory = None
        if not is_init:
            selection = self.bank.select(frame, reverse=self.tracked[frame], num_frames=num_frames)
            memory = gather_memory([self], [selection], device=features.vision_features.device)
        return model.track(
            features,
            memory=memory,
            num_objects=1,
            point_coords=coords,
            point_labels=labels,
            mask=mask,
            prev_logits=prev_logits,
            config=cfg,
        )

    def set_pending(self, frame: int, out: StepOutput, *, cond: bool, fill_hole_area: int) -> None:
        self.pending[frame] = PendingOutput(
            cond=cond,
            logits=fill_holes(out.low_res_logits, fill_hole_area),
            obj_ptr=out.obj_ptr,
            obj_score_logits=out.obj_score_logits,
        )


def gather_memory(
    objects: list[TrackedObject], selections: list[MemorySelection], *, device: torch.device
) -> MemoryInputs:
    """Stack the selected memories of objects with one layout into a batch."""
    features = torch.stack(
        [
            torch.stack([o.bank.memory(f) for _, f in s.spatial])
            for o, s in zip(objects, selections, strict=True)
        ]
    )
    tpos = torch.tensor([[t for t, _ in s.spatial] for s in selections], dtype=torch.long, device=device)
    num_ptrs = len(selections[0].pointers)
    if num_ptrs:
        ptrs = torch.stack(
            [
                torch.stack([o.bank.pointer(f) for _, f in s.pointers])
                for o, s in zip(objects, selections, strict=True)
            ]
        )
    else:
        width = objects[0].bank.pointer(selections[0].spatial[0][1]).shape[-1]
        ptrs = torch.zeros(len(objects), 0, width, device=device)
    offsets = torch.tensor([[d for d, _ in s.pointers] for s in selections], dtype=torch.long, device=device)
    offsets = offsets.reshape(len(objects), num_ptrs)
    return MemoryInputs(
        features=features.to(device),
        tpos=tpos,
        obj_ptrs=ptrs.to(device),
        ptr_offsets=offsets,
        ptr_norm=selections[0].ptr_norm,
    )


def commit_pending(
    model: SAM2Model,
    cfg: TrackingConfig,
    features: ImageFeatures,
    obj: TrackedObject,
    frame: int,
    results: ResultStore,
) -> None:
    """Encode a prompted frame's output into memory and store it as the frame's result."""
    pending = obj.pending.pop(frame)
    size = model.config.image_size
    high = F.interpolate(pending.logits, size=(size, size), mode="bilinear", align_corners=False)
    # the user shaped this mask: memory sees it binarised (when configured), whatever the prompt kind
    memory = model.encode_memory(features, high, pending.obj_score_logits, from_points=True, config=cfg)
    if obj.bank.add(frame, memory[0], pending.obj_ptr[0], cond=pending.cond):
        results.put(frame, obj.obj_id, pending.logits, float(pending.obj_score_logits))


def track_objects(
    model: SAM2Model,
    cfg: TrackingConfig,
    features: ImageFeatures,
    objects: list[TrackedObject],
    *,
    frame: int,
    reverse: bool,
    num_frames: int | None,
    results: ResultStore,
) -> None:
    """One propagation step on `frame`: track every object that is not conditioned there.

    Conditioning frames keep their stored output. Objects with the same memory layout
    share one batch through memory attention, and all tracked objects one batch through
    the memory encoder (the heads take them one by one, see `model.tracking.sam_heads`).
    """
    groups: dict[tuple[int, int], list[tuple[TrackedObject, MemorySelection]]] = defaultdict(list)
    for obj in objects:
        if not obj.bank.is_cond(frame):
            selection = obj.bank.select(frame, reverse=reverse, num_frames=num_frames)
            groups[selection.layout].append((obj, selection))
    if groups:
        device = features.vision_features.device
        done = [obj for members in groups.values() for obj, _ in members]
        memories = [
            gather_memory([o for o, _ in members], [sel for _, sel in members], device=device)
            for members in groups.values()
        ]
        out = model.track(features, memory=memories, config=cfg)  # attention per layout, then the heads
        # parity: the official predictor encodes each object's memory alone, so its cross-object
        # constraint never applies there; batching the objects must not change that
        mem_cfg = (
            replace(cfg, non_overlap_masks_for_mem_enc=False) if cfg.non_overlap_masks_for_mem_enc else cfg
        )
        new_memories = model.encode_memory(
            features, out.high_res_logits, out.obj_score_logits, from_points=False, config=mem_cfg
        )
        low = fill_holes(out.low_res_logits, cfg.fill_hole_area)
        for i, obj in enumerate(done):
            # clones: a view would keep the whole batch alive as long as any object keeps its slice
            obj.bank.add(frame, new_memories[i].clone(), out.obj_ptr[i].clone(), cond=False)
            results.put(frame, obj.obj_id, low[i : i + 1].clone(), float(out.obj_score_logits[i]))
    for obj in objects:
        obj.tracked[frame] = reverse

"""One clip through SAM 2 as in training, with its losses.

The clip's frames are encoded in one batch; the conditioning frames are segmented first
from their prompts (no memory), then every other frame in time order from the memory of
the frames before it (the model's own selection rule, `model.memory_selection`), all the
clip's objects as one batch. On the frames to correct, corrective clicks are added one at
a time and the heads run again on the same memory-conditioned features, each time with the
previous logits as the mask prompt. Every step of every frame adds its losses. Gradients
flow through the memories (kept in float32) into the frames that wrote them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from masklet.configs import TrackingConfig
from masklet.model.memory_conditioning import condition_on_memory
from masklet.model.memory_selection import BankRules, select_memory
from masklet.model.sam2 import SAM2Model
from masklet.model.tracking import encode_memory, mask_as_output, sam_heads, use_multimask
from masklet.model.types import ImageFeatures, MemoryInputs, StepOutput
from masklet.train.losses import LossWeights, StepLosses, step_losses
from masklet.train.prompts import ClipPlan, PromptSettings, error_clicks


def training_tracking_config(cfg: TrackingConfig) -> TrackingConfig:
    """The model's tracking switches as SAM 2 trains with them.

    Memories stay float32 (and carry gradients), memory attention and the heads take all
    objects as one batch, masks from prompts are not binarised before the memory encoder,
    corrected frames become conditioning frames, and object pointers are read from
    conditioning frames on both sides.
    """
    return dataclasses.replace(
        cfg,
        memory_in_bfloat16=False,
        heads_one_object_at_a_time=False,
        memory_attention_one_object_at_a_time=False,
        binarize_mask_from_pts_for_mem_enc=False,
        add_all_frames_to_correct_as_cond=True,
        only_obj_ptrs_in_the_past_for_eval=False,
        memory_temporal_stride_for_eval=1,
    )


def _memory_inputs(
    frame: int,
    cond: Sequence[int],
    memories: dict[int, Tensor],
    pointers: dict[int, Tensor],
    *,
    rules: BankRules,
    num_frames: int,
) -> MemoryInputs:
    tracked = set(memories) - set(cond)
    sel = select_memory(frame, cond, tracked, rules=rules, reverse=False, num_frames=num_frames)
    feats = torch.stack([memories[f] for _, f in sel.spatial], dim=1)  # (N, T, Cm, h, w)
    n = feats.shape[0]
    tpos = torch.tensor([slot for slot, _ in sel.spatial], dtype=torch.int64).repeat(n, 1)
    if sel.pointers:
        ptrs = torch.stack([pointers[f] for _, f in sel.pointers], dim=1)  # (N, P, C)
        offsets = torch.tensor([off for off, _ in sel.pointers], dtype=torch.int64).repeat(n, 1)
    else:
        ptrs = feats.new_zeros(n, 0, next(iter(pointers.values())).shape[-1])
        offsets = torch.zeros(n, 0, dtype=torch.int64)
    return MemoryInputs(feats, tpos.to(feats.device), ptrs, offsets.to(feats.device), sel.ptr_norm)


def _append_click(
    coords: Tensor | None, labels: Tensor | None, click: tuple[Tensor, Tensor]
) -> tuple[Tensor, Tensor]:
    new_xy, new_label = click[0][:, None], click[1][:, None]
    if coords is None or labels is None:
        return new_xy, new_label
    return torch.cat([coords, new_xy.to(coords)], dim=1), torch.cat([labels, new_label.to(labels)], dim=1)


def clip_losses(
    model: SAM2Model,
    cfg: TrackingConfig,
    pixels: Tensor,
    targets: Tensor,
    plan: ClipPlan,
    rng: np.random.Generator,
    *,
    settings: PromptSettings,
    weights: LossWeights,
    num_objects: float,
    freeze_image_encoder: bool = False,
) -> StepLosses:
    """Losses of one clip. pixels: (T, 3, S, S) normalised frames; targets: (N, T, S, S) bool."""
    device = pixels.device
    n, num_frames = targets.shape[:2]
    if freeze_image_encoder:
        with torch.no_grad():
            features: ImageFeatures = model.encode_image(pixels)
    else:
        features = model.encode_image(pixels)
    rules = BankRules.from_config(cfg)
    memories: dict[int, Tensor] = {}  # clip frame -> (N, Cm, h, w)
    pointers: dict[int, Tensor] = {}  # clip frame -> (N, C)
    cond: list[int] = []
    total = StepLosses.zero(device)
    for frame in plan.processing_order(num_frames):
        feats = features.select(frame)
        gt = targets[:, frame]
        prompt = plan.prompts.get(frame)
        is_init = frame in plan.init_cond_frames
        coords = labels = None
        if prompt is not None and prompt.kind == "mask":
            out: StepOutput = mask_as_output(model, cfg, feats, prompt.mask.to(device))
        else:
            memory = None if is_init else _memory_inputs(frame, cond, memories, pointers, rules=rules,
                                                           num_frames=num_frames)  # fmt: skip
            pix = condition_on_memory(model, cfg, feats, memory, num_objects=n)
            if prompt is not None:
                coords, labels = prompt.point_coords.to(device), prompt.point_labels.to(device)
            num_points = 0 if labels is None else labels.shape[1]
            multimask = use_multimask(cfg, is_init_cond_frame=is_init, num_points=num_points)
            out = sam_heads(model, cfg, pix, feats.high_res_features, point_coords=coords,
                            point_labels=labels, multimask=multimask)  # fmt: skip
            total = total + step_losses(out, gt, num_objects=num_objects, weights=weights)
            if frame in plan.frames_to_correct:
                for _ in range(settings.corrections_per_frame):
                    from_gt = rng.random() < settings.prob_click_from_gt
                    pred = None if from_gt else out.high_res_logits.detach()[:, 0] > 0
                    coords, labels = _append_click(coords, labels, error_clicks(pred, gt.cpu(), rng))
                    coords, labels = coords.to(device), labels.to(device)
                    multimask = use_multimask(cfg, is_init_cond_frame=is_init, num_points=labels.shape[1])
                    out = sam_heads(model, cfg, pix, feats.high_res_features, point_coords=coords,
                                    point_labels=labels, mask_input=out.low_res_logits, multimask=multimask)  # fmt: skip
                    total = total + step_losses(out, gt, num_objects=num_objects, weights=weights)
        # a mask taken as the output is the prompt itself: no loss there (no parameter made it)
        prompted = prompt is not None or frame in plan.frames_to_correct
        memories[frame] = encode_memory(model, cfg, feats, out.high_res_logits, out.obj_score_logits,
                                        from_points=prompted)  # fmt: skip
        pointers[frame] = out.obj_ptr
        if is_init or (prompted and cfg.add_all_frames_to_correct_as_cond):
            cond.append(frame)
    return total

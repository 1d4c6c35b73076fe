"""The per-frame tracking step: memory conditioning, SAM heads, object pointer, new memory.

Pure functions over a model's modules (`tracking_modules.TrackingModules`: a `SAM2Model`
has them); they keep no state. A batch holds N objects on the same frame: the frame's
features have batch 1 and are shared.
Which memories an object reads, and what is kept, is the session's business
(`masklet.predict`). Every switch comes from the `TrackingConfig` passed in,
so a session can run with its own inference-time settings.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from masklet.configs import TrackingConfig
from masklet.model.memory_conditioning import condition_on_memory
from masklet.model.tracking_modules import TrackingModules
from masklet.model.types import NO_OBJ_SCORE, ImageFeatures, MemoryInputs, StepOutput

__all__ = [
    "MASK_AS_LOGITS",
    "NO_OBJ_SCORE",
    "StepOutput",
    "encode_memory",
    "mask_as_output",
    "non_overlapping",
    "sam_heads",
    "track_step",
    "use_multimask",
]

MASK_AS_LOGITS = (20.0, -10.0)  # a binary mask prompt taken as output: scale, bias (sigmoid(-10) ~ 0)


def use_multimask(cfg: TrackingConfig, *, is_init_cond_frame: bool, num_points: int) -> bool:
    """Whether the SAM heads return three candidates (the best is kept) on this step."""
    return (
        cfg.multimask_output_in_sam
        and (is_init_cond_frame or cfg.multimask_output_for_tracking)
        and cfg.multimask_min_pt_num <= num_points <= cfg.multimask_max_pt_num
    )


def _mix_no_object_pointer(
    model: TrackingModules, cfg: TrackingConfig, obj_ptr: Tensor, present: Tensor, score: Tensor
) -> Tensor:
    """Blend the learned no-object pointer in where the object is judged absent."""
    if not (model.config.mask_decoder.pred_obj_scores and cfg.use_obj_ptrs_in_encoder):
        return obj_ptr
    weight = score.sigmoid() if cfg.soft_no_obj_ptr else present.float()  # (N, 1)
    if cfg.fixed_no_obj_ptr:
        obj_ptr = weight * obj_ptr
    return obj_ptr + (1 - weight) * model.no_obj_ptr


def sam_heads(
    model: TrackingModules,
    cfg: TrackingConfig,
    pix_feat: Tensor,
    high_res_features: tuple[Tensor, ...],
    *,
    point_coords: Tensor | None = None,
    point_labels: Tensor | None = None,
    mask_input: Tensor | None = None,
    multimask: bool = False,
) -> StepOutput:
    """Prompt encoder + mask decoder on (N, C, h, w) features, then the object pointer.

    point_coords: (N, P, 2) model-input pixels (boxes as two corners labelled 2, 3);
    mask_input: (N, 1, H', W') logits, resized to the prompt encoder's mask size.
    With `cfg.heads_one_object_at_a_time` (the default) objects go through the heads one
    at a time: the heads cost about 1 % of a tracking step, and the small matrix products
    of their MLPs round differently with the batch size; one by one, each object gets
    exactly what it gets alone (and what the official predictor, which runs objects one
    by one, gets). Off, the batch goes through at once (training's choice).
    """
    n = pix_feat.shape[0]
    if n > 1 and cfg.heads_one_object_at_a_time:

        def pick(x: Tensor | None, i: int) -> Tensor | None:
            return None if x is None else x[i : i + 1]

        outs = [
            _sam_heads_one(
                model,
                cfg,
                pix_feat[i : i + 1],
                high_res_features,
                point_coords=pick(point_coords, i),
                point_labels=pick(point_labels, i),
                mask_input=pick(mask_input, i),
                multimask=multimask,
            )
            for i in range(n)
        ]
        return StepOutput.cat(outs)
    return _sam_heads_one(
        model,
        cfg,
        pix_feat,
        high_res_features,
        point_coords=point_coords,
        point_labels=point_labels,
        mask_input=mask_input,
        multimask=multimask,
    )


def _sam_heads_one(
    model: TrackingModules,
    cfg: TrackingConfig,
    pix_feat: Tensor,
    high_res_features: tuple[Tensor, ...],
    *,
    point_coords: Tensor | None,
    point_labels: Tensor | None,
    mask_input: Tensor | None,
    multimask: bool,
) -> StepOutput:
    n = pix_feat.shape[0]
    if point_coords is None:
        # parity: no clicks is one padding point, to which the encoder adds its own padding
        point_coords = pix_feat.new_zeros(n, 1, 2)
        point_labels = -torch.ones(n, 1, dtype=torch.int32, device=pix_feat.device)
    if mask_input is not None:
        size = model.sam_prompt_encoder.mask_input_size
        if tuple(mask_input.shape[-2:]) != tuple(size):
            mask_input = F.interpolate(
                mask_input.float(), size=size, mode="bilinear", align_corners=False, antialias=True
            )
    high_res = tuple(f.float().expand(n, -1, -1, -1) for f in high_res_features)
    # float32 also under fast mode's bfloat16 autocast: the heads are 1 % of a step, and in
    # bfloat16 they flip the pixels whose logits are near 0 (1-object propagation, pixels equal
    # to the official float32 masks on the worst frame: 99.15 % with bfloat16 heads, 99.55 % without)
    with torch.autocast(pix_feat.device.type, enabled=False):
        out = model.predict_masks(
            pix_feat.float(),
            high_res,
            point_coords=point_coords,
            point_labels=point_labels,
            mask_input=None if mask_input is None else mask_input.float(),
            multimask_output=multimask,
        )
    logits, score = out.mask_logits, out.obj_score_logits  # (N, M, 4h, 4w), (N, 1)
    present = score > 0
    if model.config.mask_decoder.pred_obj_scores:
        # the memory sees a hard choice between object and no object, like the output
        logits = torch.where(present[:, :, None, None], logits, NO_OBJ_SCORE)
    logits = logits.float()

    size = model.config.image_size
    # parity: every candidate is upsampled before the best is picked (the interpolation
    # kernel rounds differently for one channel than for three)
    high = F.interpolate(logits, size=(size, size), mode="bilinear", align_corners=False)
    token = out.mask_tokens[:, 0]  # (N, C)
    rows = torch.arange(n, device=logits.device)
    best = torch.argmax(out.iou, dim=-1) if multimask else rows.new_zeros(n)
    chosen_low, chosen_high = logits, high
    if multimask:
        chosen_low, chosen_high = logits[rows, best].unsqueeze(1), high[rows, best].unsqueeze(1)
        if out.mask_tokens.shape[1] > 1:
            token = out.mask_tokens[rows, best]

    obj_ptr = _mix_no_object_pointer(model, cfg, model.obj_ptr_proj(token), present, score)
    return StepOutput(
        low_res_logits=chosen_low, high_res_logits=chosen_high, obj_ptr=obj_ptr, obj_score_logits=score,
        candidate_low_res_logits=logits, candidate_high_res_logits=high, iou=out.iou, best=best,
    )  # fmt: skip


def mask_as_output(
    model: TrackingModules, cfg: TrackingConfig, features: ImageFeatures, mask: Tensor
) -> StepOutput:
    """A binary (N, 1, S, S) mask prompt taken directly as the output (no memory, no SAM mask).

    The SAM heads still run on the downsampled mask, to produce the object pointer.
    """
    n = mask.shape[0]
    scale, bias = MASK_AS_LOGITS
    mask = mask.float()
    high = mask * scale + bias
    low = F.interpolate(
        high,
        size=(high.shape[-2] // 4, high.shape[-1] // 4),
        mode="bilinear",
        align_corners=False,
        antialias=True,
    )
    if cfg.use_obj_ptrs_in_encoder:
        vision = features.vision_features.expand(n, -1, -1, -1)
        heads = sam_heads(
            model, cfg, vision, features.high_res_features, mask_input=model.mask_downsample(mask)
        )
        obj_ptr = heads.obj_ptr
    else:
        obj_ptr = mask.new_zeros(n, model.config.hidden_dim)
    # the prompt, not the decoder's object score, decides whether the object is present
    present = torch.any(mask.flatten(1) > 0.0, dim=1)[:, None]  # (N, 1)
    score = scale * present.float() + bias
    if model.config.mask_decoder.pred_obj_scores:
        # parity: a second blend (the heads above blended by their own score already)
        obj_ptr = _mix_no_object_pointer(model, cfg, obj_ptr, present, score)
    # parity: the official step reports a predicted IoU of 1 for a mask taken as output
    return StepOutput(
        low_res_logits=low, high_res_logits=high, obj_ptr=obj_ptr, obj_score_logits=score,
        candidate_low_res_logits=low, candidate_high_res_logits=high, iou=mask.new_ones(n, 1),
        best=torch.zeros(n, dtype=torch.int64, device=mask.device),
    )  # fmt: skip


def track_step(
    model: TrackingModules,
    cfg: TrackingConfig,
    features: ImageFeatures,
    *,
    memory: MemoryInputs | Sequence[MemoryInputs] | None,
    num_objects: int = 1,
    point_coords: Tensor | None = None,
    point_labels: Tensor | None = None,
    mask: Tensor | None = None,
    prev_logits: Tensor | None = None,
) -> StepOutput:
    """Segment N objects on one frame (batch-1 `features`) from their memory and prompts.

    memory None marks an initial conditioning frame (no memory: SAM on one image) for
    `num_objects` objects. A sequence of memories (objects whose memories differ in
    layout) goes through attention one layout at a time (objects sharing a layout as one
    batch), then through the heads object by object (see `sam_heads`), in sequence order. mask: (N, 1, S, S) binary prompt; prev_logits:
    (N, 1, 4h, 4w) earlier logits of this frame, fed with new clicks as the mask prompt.
    """
    if mask is not None and cfg.use_mask_input_as_output_without_sam:
        return mask_as_output(model, cfg, features, mask)
    if memory is None or isinstance(memory, MemoryInputs):
        pix_feat = condition_on_memory(model, cfg, features, memory, num_objects=num_objects)
    else:
        conditioned = [
            condition_on_memory(model, cfg, features, m, num_objects=m.num_objects) for m in memory
        ]
        pix_feat = conditioned[0] if len(conditioned) == 1 else torch.cat(conditioned)  # (N, C, h, w)
        # parity: the official layout (channels last), see condition_on_memory
        pix_feat = pix_feat.contiguous(memory_format=torch.channels_last)
    num_points = 0 if point_labels is None else point_labels.shape[1]
    multimask = use_multimask(cfg, is_init_cond_frame=memory is None, num_points=num_points)
    return sam_heads(
        model,
        cfg,
        pix_feat,
        features.high_res_features,
        point_coords=point_coords,
        point_labels=point_labels,
        mask_input=prev_logits if prev_logits is not None else mask,
        multimask=multimask,
    )


def _token_major(feature_map: Tensor, n: int) -> Tensor:
    """(1, C, h, w) features repeated for N objects, stored as (h * w, N, C) tokens.

    parity: the official encoder reads its features in this layout; the convolutions round
    differently on a plain (N, C, h, w) layout, enough to flip bfloat16 roundings of the memory.
    """
    _, c, h, w = feature_map.shape
    tokens = feature_map.flatten(2).permute(2, 0, 1).expand(-1, n, -1).contiguous()  # (h * w, N, C)
    return tokens.permute(1, 2, 0).view(n, c, h, w)


def non_overlapping(logits: Tensor) -> Tensor:
    """Keep each pixel only for the object with the highest logit: (N, 1, H, W) -> same."""
    if logits.shape[0] == 1:
        return logits
    winner = torch.argmax(logits, dim=0, keepdim=True)
    index = torch.arange(logits.shape[0], device=logits.device)[:, None, None, None]
    return torch.where(winner == index, logits, torch.clamp(logits, max=-10.0))


def encode_memory(
    model: TrackingModules,
    cfg: TrackingConfig,
    features: ImageFeatures,
    high_res_logits: Tensor,
    obj_score_logits: Tensor,
    *,
    from_points: bool,
) -> Tensor:
    """A new spatial memory per object: (N, Cm, h, w), bfloat16 unless `cfg.memory_in_bfloat16` is off.

    high_res_logits: (N, 1, S, S); from_points: the mask answers clicks, boxes or a
    mask prompt (binarised when the config says so) rather than tracking.
    """
    n = high_res_logits.shape[0]
    if cfg.non_overlap_masks_for_mem_enc:
        high_res_logits = non_overlapping(high_res_logits)
    if cfg.binarize_mask_from_pts_for_mem_enc and from_points:
        mask = (high_res_logits > 0).float()
    else:
        mask = torch.sigmoid(high_res_logits)
    if cfg.sigmoid_scale_for_mem_enc != 1.0:
        mask = mask * cfg.sigmoid_scale_for_mem_enc
    if cfg.sigmoid_bias_for_mem_enc != 0.0:
        mask = mask + cfg.sigmoid_bias_for_mem_enc
    vision = _token_major(features.vision_features, n)
    memory = model.memory_encoder(vision, mask, skip_mask_sigmoid=True).vision_features  # (N, Cm, h, w)
    if cfg.no_obj_embed_spatial:
        absent = 1 - (obj_score_logits > 0).float()  # (N, 1)
        memory = memory + absent[..., None, None] * model.no_obj_embed_spatial[..., None, None]
    # parity: the official predictor stores memories in bfloat16, also on CPU
    return memory.to(torch.bfloat16) if cfg.memory_in_bfloat16 else memory

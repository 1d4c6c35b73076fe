"""What the model's steps pass between them: the bottom of `masklet.model`.

Image features, the memory an object reads, the mask decoder's and the tracking
step's outputs, and the no-object score. It imports no other model module; `sam2.py`,
`tracking.py` and `memory_conditioning.py` import these from here and not from each
other (the parts of a model the step reads are `tracking_modules.TrackingModules`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

NO_OBJ_SCORE = -1024.0  # mask logit of every pixel when the object is judged absent


@dataclass(frozen=True, slots=True)
class ImageFeatures:
    """Backbone features of a batch of images, ready for the SAM heads."""

    backbone_fpn: tuple[Tensor, ...]  # highest resolution first; levels 0, 1 already through conv_s0/s1
    vision_pos_enc: tuple[Tensor, ...]  # same shapes as backbone_fpn, (B, C, H, W)

    @property
    def vision_features(self) -> Tensor:  # (B, C, h, w), lowest resolution
        return self.backbone_fpn[-1]

    @property
    def high_res_features(self) -> tuple[Tensor, ...]:  # (B, C/8, 4h, 4w), (B, C/4, 2h, 2w)
        return self.backbone_fpn[:-1]

    def select(self, index: int | slice | Tensor) -> ImageFeatures:
        """The features of some images of the batch (keeps the batch dimension)."""
        if isinstance(index, int):
            index = slice(index, index + 1)
        return ImageFeatures(
            backbone_fpn=tuple(f[index] for f in self.backbone_fpn),
            vision_pos_enc=tuple(p[index] for p in self.vision_pos_enc),
        )


@dataclass(frozen=True, slots=True)
class MemoryInputs:
    """The memory N objects read on one frame; every object has T frames and P pointers."""

    features: Tensor  # (N, T, Cm, h, w) spatial memories, as stored (bfloat16 in a session)
    tpos: Tensor  # (N, T) int64 temporal slot: 0 for conditioning frames, 1..num_maskmem-1 recent (1 oldest)
    obj_ptrs: Tensor  # (N, P, C) object pointers
    ptr_offsets: Tensor  # (N, P) int64 frame distance of each pointer (signed for SAM 2.1)
    ptr_norm: int  # the distance mapped to 1.0 in the pointers' temporal encoding

    @property
    def num_objects(self) -> int:
        return self.features.shape[0]


@dataclass(frozen=True, slots=True)
class DecoderOutput:
    """What the mask decoder predicts for a batch of prompts."""

    mask_logits: Tensor  # (B, M, 4h, 4w); M = 3 if multimask_output else 1
    iou: Tensor  # (B, M) predicted IoU per candidate (a probability if the config says sigmoid)
    # (B, M', C) output tokens for the object pointer: M' = 3 with multimask output and
    # use_multimask_token_for_obj_ptr, else 1 (the single-mask token)
    mask_tokens: Tensor
    obj_score_logits: Tensor  # (B, 1); > 0 means the object is judged present


@dataclass(frozen=True, slots=True)
class StepOutput:
    """What one tracking step predicts for N objects on a frame.

    The chosen mask (the candidate with the highest predicted IoU when the heads gave
    several) is what a session keeps; the candidates, their predicted IoU and the object
    score are what training's losses read (the minimum over candidates, the IoU head's
    L1, the object score's BCE).
    """

    low_res_logits: Tensor  # (N, 1, 4h, 4w) float32; NO_OBJ_SCORE everywhere if judged absent
    high_res_logits: Tensor  # (N, 1, S, S) float32 at the model input size (bilinear from low-res)
    obj_ptr: Tensor  # (N, C) object pointer for later frames
    obj_score_logits: Tensor  # (N, 1); > 0 means the object is judged present
    candidate_low_res_logits: Tensor  # (N, M, 4h, 4w): every candidate, M = 3 multimask else 1
    candidate_high_res_logits: Tensor  # (N, M, S, S)
    iou: Tensor  # (N, M) the decoder's predicted IoU of each candidate
    best: Tensor  # (N,) int64 index of the chosen candidate

    @property
    def num_candidates(self) -> int:
        return self.candidate_low_res_logits.shape[1]

    @staticmethod
    def cat(outs: Sequence[StepOutput]) -> StepOutput:
        """Several outputs as one batch, in order (all with the same number of candidates)."""
        return StepOutput(
            low_res_logits=torch.cat([o.low_res_logits for o in outs]),
            high_res_logits=torch.cat([o.high_res_logits for o in outs]),
            obj_ptr=torch.cat([o.obj_ptr for o in outs]),
            obj_score_logits=torch.cat([o.obj_score_logits for o in outs]),
            candidate_low_res_logits=torch.cat([o.candidate_low_res_logits for o in outs]),
            candidate_high_res_logits=torch.cat([o.candidate_high_res_logits for o in outs]),
            iou=torch.cat([o.iou for o in outs]),
            best=torch.cat([o.best for o in outs]),
        )

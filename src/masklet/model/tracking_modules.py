"""`TrackingModules`: the parts of a SAM 2 model that the per-frame step reads.

The step functions (`tracking.py`, `memory_conditioning.py`) are typed against this
protocol rather than against `SAM2Model`, which calls them: no import circle, and any
module set with these parts (a training wrapper, a test double) can run the step.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor, nn

from masklet.configs import SAM2Config
from masklet.model.mask_decoder import MaskDecoder
from masklet.model.memory_attention import MemoryAttention
from masklet.model.memory_encoder import MemoryEncoder
from masklet.model.prompt_encoder import PromptEncoder
from masklet.model.types import DecoderOutput


class TrackingModules(Protocol):
    """The parts of a SAM 2 model that the tracking step and the memory conditioning read."""

    config: SAM2Config
    sam_prompt_encoder: PromptEncoder
    sam_mask_decoder: MaskDecoder
    memory_attention: MemoryAttention
    memory_encoder: MemoryEncoder
    obj_ptr_proj: nn.Module
    obj_ptr_tpos_proj: nn.Module
    mask_downsample: nn.Conv2d  # present when use_obj_ptrs_in_encoder
    maskmem_tpos_enc: nn.Parameter
    no_mem_embed: nn.Parameter
    no_mem_pos_enc: nn.Parameter
    no_obj_ptr: nn.Parameter  # present with object scores and pointers
    no_obj_embed_spatial: nn.Parameter  # present when no_obj_embed_spatial

    def predict_masks(
        self,
        image_embed: Tensor,
        high_res_features: tuple[Tensor, ...] | None,
        *,
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        mask_input: Tensor | None = None,
        multimask_output: bool,
        repeat_image: bool = False,
    ) -> DecoderOutput: ...

"""Conditioning the current frame's features on an object's memory.

The memory a frame reads is chosen outside the model (`masklet.predict.memory_bank`);
here it arrives as tensors: spatial memories of T frames with their temporal
slots, and P object pointers with their frame distances. Several objects with
the same memory layout (same T and P) go through memory attention as one batch.
"""

from __future__ import annotations

import torch
from torch import Tensor

from masklet.configs import TrackingConfig
from masklet.model.tracking_modules import TrackingModules
from masklet.model.types import ImageFeatures, MemoryInputs


def sine_encoding_1d(positions: Tensor, dim: int, *, temperature: float = 10000.0) -> Tensor:
    """(...,) positions -> (..., dim): sines of all frequencies, then cosines."""
    half = dim // 2
    dim_t = torch.arange(half, dtype=torch.float32, device=positions.device)
    dim_t = temperature ** (2 * (dim_t // 2) / half)
    angles = positions.unsqueeze(-1) / dim_t
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def pointer_tokens(
    model: TrackingModules, cfg: TrackingConfig, memory: MemoryInputs
) -> tuple[Tensor, Tensor]:
    """Object pointers as memory tokens (N, P * C / Cm, Cm) and their temporal encoding."""
    ptrs = memory.obj_ptrs  # (N, P, C)
    n, p, c = ptrs.shape
    mem_dim = model.config.mem_dim
    if cfg.add_tpos_enc_to_obj_ptrs:
        tpos_dim = c if cfg.proj_tpos_enc_in_obj_ptrs else mem_dim
        # parity: integer distances divided as float32, like the official int64 tensor / int
        rel = memory.ptr_offsets.to(torch.float32) / memory.ptr_norm
        sine = sine_encoding_1d(rel, tpos_dim)  # (N, P, tpos_dim)
        # parity: projected object by object, a (P, tpos_dim) product each as the official
        # model computes it; a product over N * P rows rounds differently
        pos = torch.stack([model.obj_ptr_tpos_proj(sine[i]) for i in range(n)])  # (N, P, Cm)
    else:
        pos = ptrs.new_zeros(n, p, mem_dim)
    if mem_dim < c:
        # a pointer wider than the memory is split into C / Cm consecutive tokens
        split = c // mem_dim
        ptrs = ptrs.reshape(n, p * split, mem_dim)
        pos = pos.repeat_interleave(split, dim=1)
    return ptrs, pos


def spatial_tokens(model: TrackingModules, memory: MemoryInputs) -> tuple[Tensor, Tensor]:
    """Spatial memories as tokens (N, T * h * w, Cm) and their position + temporal encoding."""
    feats = memory.features
    n, t, cm, h, w = feats.shape
    # parity: the official bank stores bf16 memories, which meet float32 pointers in one
    # concatenation; attention therefore sees bf16-rounded values in float32
    tokens = feats.to(torch.float32).permute(0, 1, 3, 4, 2).reshape(n, t * h * w, cm)
    grid = model.memory_encoder.position_encoding.grid(h, w, feats.device)  # (Cm, h, w)
    grid = grid.flatten(1).transpose(0, 1)  # (h * w, Cm)
    slots = model.maskmem_tpos_enc.shape[0] - memory.tpos - 1  # (N, T): row 0 is the oldest slot
    tpos_enc = model.maskmem_tpos_enc.reshape(-1, cm)[slots]  # (N, T, Cm)
    pos = grid[None, None] + tpos_enc[:, :, None]  # (N, T, h * w, Cm)
    return tokens, pos.reshape(n, t * h * w, cm)


def condition_on_memory(
    model: TrackingModules,
    cfg: TrackingConfig,
    features: ImageFeatures,
    memory: MemoryInputs | None,
    *,
    num_objects: int,
) -> Tensor:
    """The lowest-resolution features of one frame, conditioned per object: (N, C, h, w).

    `features` holds one frame (batch 1). Without memory (an initial conditioning
    frame) SAM 2 adds the learned no-memory embedding instead.
    """
    vision = features.vision_features.expand(num_objects, -1, -1, -1)  # (N, C, h, w)
    n, c, h, w = vision.shape
    if memory is None and cfg.directly_add_no_mem_embed:
        return vision + model.no_mem_embed.reshape(1, c, 1, 1)

    if memory is None:
        # a single dummy token, so that attention never sees an empty memory
        tokens = model.no_mem_embed.expand(n, 1, -1)
        tokens_pos = model.no_mem_pos_enc.expand(n, 1, -1)
        num_ptr_tokens = 0
    else:
        tokens, tokens_pos = spatial_tokens(model, memory)
        num_ptr_tokens = 0
        if memory.obj_ptrs.shape[1] > 0:
            ptrs, ptrs_pos = pointer_tokens(model, cfg, memory)
            tokens = torch.cat([tokens, ptrs.to(tokens.dtype)], dim=1)
            tokens_pos = torch.cat([tokens_pos, ptrs_pos.to(tokens_pos.dtype)], dim=1)
            num_ptr_tokens = ptrs.shape[1]

    # layout boundary: maps (N, C, h, w) -> tokens (N, L, C)
    curr = vision.flatten(2).transpose(1, 2)
    curr_pos = features.vision_pos_enc[-1].expand(n, -1, -1, -1).flatten(2).transpose(1, 2)
    if n > 1 and cfg.memory_attention_one_object_at_a_time:
        out = torch.cat([
            model.memory_attention(curr=curr[i : i + 1], curr_pos=curr_pos[i : i + 1], memory=tokens[i : i + 1],
                                   memory_pos=tokens_pos[i : i + 1], num_obj_ptr_tokens=num_ptr_tokens)
            for i in range(n)
        ])  # fmt: skip
    else:
        out = model.memory_attention(
            curr=curr, curr_pos=curr_pos, memory=tokens, memory_pos=tokens_pos, num_obj_ptr_tokens=num_ptr_tokens
        )  # (N, L, C)
    # parity: a strided view (channels-last layout), not a copy, like the official model; the
    # decoder's kernels round differently on the two layouts
    return out.transpose(1, 2).view(n, c, h, w)

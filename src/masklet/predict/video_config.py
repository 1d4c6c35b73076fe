"""A tracking session's settings: inference switches, memory limits, and its memory report."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masklet.configs import TrackingConfig
from masklet.errors import ConfigError

# TrackingConfig fields that only steer inference (no weights depend on them)
SESSION_FLAGS = frozenset(
    {
        "fill_hole_area",
        "add_all_frames_to_correct_as_cond",
        "binarize_mask_from_pts_for_mem_enc",
        "max_cond_frames_in_attn",
        "memory_temporal_stride_for_eval",
        "max_obj_ptrs_in_encoder",
        "only_obj_ptrs_in_the_past_for_eval",
        "multimask_output_in_sam",
        "multimask_min_pt_num",
        "multimask_max_pt_num",
        "multimask_output_for_tracking",
        "non_overlap_masks_for_mem_enc",
        "non_overlap_masks",
        "use_mask_input_as_output_without_sam",
        "memory_in_bfloat16",
        "heads_one_object_at_a_time",
        "memory_attention_one_object_at_a_time",
    }
)


def session_tracking_config(base: TrackingConfig, changes: Mapping[str, Any]) -> TrackingConfig:
    """`base` with inference switches changed; weight-bound fields cannot be."""
    unknown = set(changes) - SESSION_FLAGS
    if unknown:
        raise ConfigError(
            f"VideoPredictor: {sorted(unknown)} cannot be set per session; allowed: {sorted(SESSION_FLAGS)}"
        )
    return dataclasses.replace(base, **changes)


@dataclass(frozen=True, slots=True)
class SessionLimits:
    """How much a session keeps in RAM; the rest goes to a temporary folder under `spill_dir`."""

    max_memory_frames: int = 16  # tracked-frame memories per object
    max_results_in_memory: int = 64  # low-res logit maps, all objects
    max_cached_features: int = 2  # frames whose image features are cached (prompted frames come on top)
    spill_dir: str | os.PathLike[str] | None = None  # None: the system temporary folder

    def __post_init__(self) -> None:
        for name in ("max_memory_frames", "max_results_in_memory"):
            if getattr(self, name) < 0:
                raise ConfigError(f"VideoPredictor: {name} must be 0 or more, got {getattr(self, name)}")
        if self.max_cached_features < 1:
            raise ConfigError(
                f"VideoPredictor: max_cached_features must be at least 1, got {self.max_cached_features}"
            )


@dataclass(frozen=True, slots=True)
class MemoryUsage:
    """How much of a session's state is in RAM (counts of tensors, and bytes) and on disk."""

    memories_in_ram: int  # spatial memories, all objects (conditioning + recent tracked frames)
    results_in_ram: int  # low-res logit maps
    features_cached: int  # frames whose image features are cached
    spilled: int  # tensors in the session's temporary folder
    spill_dir: Path | None  # that folder (None until something is spilled)
    ram_bytes: int  # tensor and array data the session holds (features, memories, results, frames)

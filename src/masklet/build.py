"""`build_sam2`: a SAM 2 model from a config name, with random, local or downloaded weights."""

from __future__ import annotations

import functools
import os
from typing import Any

import torch

from masklet.checkpoints import download_checkpoint, load_checkpoint
from masklet.configs import SAM2Config, get_config
from masklet.model.sam2 import SAM2Model


def build_sam2(
    name: str | SAM2Config = "sam2.1_hiera_t",
    checkpoint: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cpu",
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    progress: bool = True,
    **overrides: Any,
) -> SAM2Model:
    """A SAM 2 model in eval mode.

    checkpoint: None (random init), a path to an official `.pt` file, or
    "download" (the official file for `name`, fetched into the cache once).
    Overrides change config fields, e.g. `image_size=512` for fast experiments.
    """
    cfg = get_config(name, **overrides)
    model = SAM2Model(cfg)
    if checkpoint is not None:
        if str(checkpoint) == "download":
            checkpoint = download_checkpoint(cfg.name, cache_dir=cache_dir, progress=progress)
        load_checkpoint(model, checkpoint, config_name=cfg.name, expected_shapes=expected_shapes)
    return model.to(device).eval()


@functools.lru_cache(maxsize=8)
def _expected_shapes(name: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    with torch.device("meta"):
        model = SAM2Model(get_config(name))
    return tuple((k, tuple(v.shape)) for k, v in model.state_dict().items())


def expected_shapes(name: str) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the official config `name`'s state dict (built on the meta device)."""
    return dict(_expected_shapes(name))

"""The official `sam2` package's public names and signatures, over masklet.

An official notebook runs by changing its imports:

    from masklet.compat import build_sam2, SAM2ImagePredictor, SAM2AutomaticMaskGenerator

Only this module speaks the official argument shapes (config file paths, hydra
override strings); everything else in masklet uses typed configs.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import PurePosixPath
from typing import Any

import torch

from masklet.build import build_sam2 as _build
from masklet.configs import CONFIGS, SAM2Config, get_config
from masklet.errors import ConfigError
from masklet.model.sam2 import SAM2Model
from masklet.predict.automatic import AutomaticMaskGenerator
from masklet.predict.image import ImagePredictor

log = logging.getLogger(__name__)

_OVERRIDE = re.compile(r"^\+{0,2}model\.(?:sam_mask_decoder_extra_args\.)?(\w+)=(.+)$")


def config_name_from_file(config_file: str) -> str:
    """'configs/sam2.1/sam2.1_hiera_t.yaml' (or the bare stem) -> 'sam2.1_hiera_t'."""
    stem = PurePosixPath(str(config_file).replace("\\", "/")).name
    stem = stem[: -len(".yaml")] if stem.endswith(".yaml") else stem
    if stem not in CONFIGS:
        raise ConfigError(
            f"unknown SAM 2 config file {config_file!r}; expected one of "
            f"{', '.join(f'{n}.yaml' for n in CONFIGS)}"
        )
    return stem


def _parse_value(text: str) -> Any:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def apply_hydra_overrides(cfg: SAM2Config, overrides: list[str]) -> SAM2Config:
    """Apply official `++model.<field>=<value>` override strings to a typed config."""
    sections = ("tracking", "mask_decoder")
    changes: dict[str, dict[str, Any]] = {s: {} for s in sections}
    top: dict[str, Any] = {}
    for item in overrides:
        match = _OVERRIDE.match(item.strip())
        if not match:
            raise ConfigError(f"unsupported override {item!r}: expected '++model.<field>=<value>'")
        field_name, value = match.group(1), _parse_value(match.group(2))
        if field_name.startswith("_target_") or field_name == "compile_image_encoder":
            continue  # class paths and compilation have no meaning here
        if field_name in ("image_size",):
            top[field_name] = value
            continue
        for section in sections:
            if hasattr(getattr(cfg, section), field_name):
                changes[section][field_name] = value
                break
        else:
            raise ConfigError(f"override {item!r} names no known SAM 2 setting")
    return get_config(cfg, **top, **{s: c for s, c in changes.items() if c})


def _resolve_device(device: str | torch.device) -> torch.device:
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        log.warning("CUDA is not available; running on the CPU instead")
        return torch.device("cpu")
    return device


def build_sam2(
    config_file: str,
    ckpt_path: str | os.PathLike[str] | None = None,
    device: str | torch.device = "cuda",
    mode: str = "eval",
    hydra_overrides_extra: list[str] | None = None,
    apply_postprocessing: bool = True,
    **kwargs: Any,
) -> SAM2Model:
    """The official `sam2.build_sam.build_sam2`, with the same arguments."""
    cfg = get_config(config_name_from_file(config_file))
    overrides = list(hydra_overrides_extra or [])
    if not apply_postprocessing:
        overrides.append("++model.sam_mask_decoder_extra_args.dynamic_multimask_via_stability=false")
    cfg = apply_hydra_overrides(cfg, overrides)
    model = _build(cfg, ckpt_path, _resolve_device(device))
    return model.train(mode == "train")


class SAM2ImagePredictor(ImagePredictor):
    """The official `SAM2ImagePredictor` (same constructor, methods and return values)."""

    def __init__(
        self, sam_model: SAM2Model, mask_threshold: float = 0.0, max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0, **kwargs: Any,
    ) -> None:
        super().__init__(sam_model, mask_threshold=mask_threshold, max_hole_area=max_hole_area,
                         max_sprinkle_area=max_sprinkle_area)


class SAM2AutomaticMaskGenerator(AutomaticMaskGenerator):
    """The official `SAM2AutomaticMaskGenerator`; `generate` returns a list of dicts."""

    def __init__(self, model: SAM2Model, **kwargs: Any) -> None:
        if kwargs.pop("use_m2m", False):
            raise ConfigError("use_m2m (mask-to-mask refinement) is not supported by masklet yet")
        super().__init__(model, **kwargs)

    def generate(self, image: Any) -> list[dict[str, Any]]:  # type: ignore[override]
        return [record.to_dict() for record in super().generate(image)]


__all__ = [
    "SAM2AutomaticMaskGenerator",
    "SAM2ImagePredictor",
    "apply_hydra_overrides",
    "build_sam2",
    "config_name_from_file",
]

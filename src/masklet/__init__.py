"""masklet: SAM 2 for images and videos, and the data engine around it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["build_sam2", "ImagePredictor", "AutomaticMaskGenerator", "VideoPredictor", "__version__"]

# Lazy attributes keep `import masklet` cheap (no torch import, no I/O).
_LAZY = {
    "build_sam2": "masklet.build",
    "ImagePredictor": "masklet.predict.image",
    "AutomaticMaskGenerator": "masklet.predict.automatic",
    "VideoPredictor": "masklet.predict.video",
}

if TYPE_CHECKING:  # pragma: no cover
    from masklet.build import build_sam2
    from masklet.predict.automatic import AutomaticMaskGenerator
    from masklet.predict.image import ImagePredictor
    from masklet.predict.video import VideoPredictor


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'masklet' has no attribute {name!r}")

"""Reading images and writing mask pictures (PNG masks, overlays)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from masklet.errors import FrameSourceError

# distinct, saturated colours for object ids 1, 2, ... (0 is background)
OBJECT_COLOURS = (
    (230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48),
    (145, 30, 180), (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212),
)


def load_image(path: str | os.PathLike[str]) -> np.ndarray:
    """An HxWx3 uint8 RGB array; FrameSourceError if the file is missing or not an image."""
    path = Path(path)
    if not path.is_file():
        raise FrameSourceError(f"image {path} does not exist")
    try:
        with Image.open(path) as img:
            img.load()
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise FrameSourceError(f"cannot read image {path}: {exc}; is it a complete JPEG/PNG file?") from exc


def save_mask_png(mask: np.ndarray, path: str | os.PathLike[str]) -> None:
    """A boolean (H, W) mask as an 8-bit PNG, 255 inside, 0 outside."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8)).save(tmp, format="PNG")
    os.replace(tmp, path)


def colour_for(obj_id: int) -> tuple[int, int, int]:
    return OBJECT_COLOURS[(obj_id - 1) % len(OBJECT_COLOURS)]


def overlay_masks(image: np.ndarray, masks: dict[int, np.ndarray], *, alpha: float = 0.5) -> np.ndarray:
    """The image with each object's mask tinted in its colour and outlined."""
    out = image.astype(np.float32).copy()
    for obj_id, mask in masks.items():
        colour = np.array(colour_for(obj_id), dtype=np.float32)
        out[mask] = (1 - alpha) * out[mask] + alpha * colour
        edge = mask & ~_erode(mask)
        out[edge] = colour
    return out.clip(0, 255).astype(np.uint8)


def _erode(mask: np.ndarray) -> np.ndarray:
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return inner


def draw_prompts(
    image: np.ndarray, points: list[tuple[float, float, int]], boxes: list[tuple[float, float, float, float]]
) -> np.ndarray:
    """Draw clicks (green positive, red negative) and boxes on a copy of the image."""
    from PIL import ImageDraw

    pil = Image.fromarray(image)
    draw = ImageDraw.Draw(pil)
    radius = max(3, min(image.shape[:2]) // 100)
    for x, y, label in points:
        fill = (0, 220, 0) if label == 1 else (220, 0, 0)
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill, outline=(255, 255, 255))
    for x0, y0, x1, y1 in boxes:
        draw.rectangle([x0, y0, x1, y1], outline=(0, 255, 0), width=max(2, radius // 2))
    return np.asarray(pil)


def save_image(image: np.ndarray, path: str | os.PathLike[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    Image.fromarray(image).save(tmp, format=Image.registered_extensions().get(path.suffix.lower(), "PNG"))
    os.replace(tmp, path)

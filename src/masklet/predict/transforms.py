"""Pixels in, model-input tensors out, and low-res logits back to image size.

The official code preprocesses differently by path, and both are kept:
images (image predictor) are resized as float tensors, bilinear with
antialiasing; video frames are resized as 8-bit PIL images (bicubic).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from masklet.errors import PromptError

PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)


def as_rgb_array(image: Any, *, what: str = "image") -> np.ndarray:
    """An HxWx3 uint8 RGB array from a numpy array or a PIL image."""
    if isinstance(image, Image.Image):
        return np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise PromptError(f"{what} must be an HxWx3 uint8 numpy array or a PIL image, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise PromptError(f"{what} must have shape (H, W, 3), got {tuple(image.shape)}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise PromptError(f"{what} is empty: shape {tuple(image.shape)}")
    if image.dtype != np.uint8:
        raise PromptError(f"{what} must be uint8 in [0, 255], got dtype {image.dtype}")
    return image


def _normalise(pixels: Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> Tensor:
    mean_t = torch.tensor(mean, dtype=pixels.dtype, device=pixels.device).view(-1, 1, 1)
    std_t = torch.tensor(std, dtype=pixels.dtype, device=pixels.device).view(-1, 1, 1)
    return (pixels - mean_t) / std_t


def preprocess_image(
    image: np.ndarray, size: int, *, mean: tuple[float, ...] = PIXEL_MEAN, std: tuple[float, ...] = PIXEL_STD
) -> Tensor:
    """(3, size, size) float32 model input for the image path.

    parity: the official image predictor scales to [0, 1] first, then resizes the
    float tensor (bilinear, antialiased), then normalises.
    """
    pixels = torch.from_numpy(np.array(image, copy=True)).permute(2, 0, 1).float().div(255.0)
    pixels = F.interpolate(pixels[None], size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
    return _normalise(pixels, mean, std)


def preprocess_video_frame(
    image: np.ndarray, size: int, *, mean: tuple[float, ...] = PIXEL_MEAN, std: tuple[float, ...] = PIXEL_STD
) -> Tensor:
    """(3, size, size) float32 model input for the video path.

    parity: the official video loader resizes the 8-bit image with PIL's default
    (bicubic) filter, ignoring the aspect ratio, before scaling to [0, 1].
    """
    resized = np.asarray(Image.fromarray(image).resize((size, size)))
    pixels = torch.from_numpy(resized.astype(np.float64) / 255.0).permute(2, 0, 1).float()
    return _normalise(pixels, mean, std)


def coords_to_model(coords_xy: Tensor, orig_hw: tuple[int, int], size: int) -> Tensor:
    """Pixel coordinates (..., 2) in the original image -> model-input pixels."""
    h, w = orig_hw
    scaled = coords_xy.clone().float()
    scaled[..., 0] = scaled[..., 0] / w
    scaled[..., 1] = scaled[..., 1] / h
    return scaled * size


def upsample_logits(low_res_logits: Tensor, orig_hw: tuple[int, int]) -> Tensor:
    """(B, M, h, w) low-res logits -> (B, M, H, W) at the original image size (bilinear)."""
    return F.interpolate(low_res_logits.float(), size=orig_hw, mode="bilinear", align_corners=False)

"""Checking a tracking session's prompts and mapping them to model-input tensors."""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from masklet.errors import PromptError, SessionError


@dataclass(frozen=True, slots=True)
class Prompt:
    """One object's prompt on one frame, in model-input pixels."""

    coords: Tensor | None  # (1, P, 2) x, y; a box comes first as two corners
    labels: Tensor | None  # (1, P) int32: 1 foreground, 0 background, 2 / 3 box corners
    mask: Tensor | None  # (1, 1, S, S) float32 in {0, 1}
    has_box: bool


def check_obj_id(obj_id: Any) -> int:
    """An object id as an int; SessionError for anything else."""
    try:
        return operator.index(obj_id)
    except TypeError:
        raise SessionError(
            f"an object id must be an integer, got {type(obj_id).__name__} {obj_id!r}"
        ) from None


def _as_float_array(value: Any, what: str) -> np.ndarray:
    try:
        array = np.asarray(value.detach().cpu() if isinstance(value, Tensor) else value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise PromptError(f"{what} must be numbers, got {type(value).__name__} ({error})") from None
    if not np.all(np.isfinite(array)):
        raise PromptError(f"{what} must be finite numbers, got {array.tolist()}")
    return array


def _check_inside(xy: np.ndarray, what: str, height: int, width: int) -> None:
    outside = (xy[:, 0] < 0) | (xy[:, 0] > width) | (xy[:, 1] < 0) | (xy[:, 1] > height)
    if outside.any():
        bad = xy[outside][0].tolist()
        raise PromptError(
            f"{what} {bad} lies outside the {width}x{height} frame; give (x, y) pixel coordinates "
            f"with 0 <= x <= {width} and 0 <= y <= {height}"
        )


def _points(points: Any, labels: Any, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    xy = _as_float_array(points, "points")
    if xy.ndim == 1 and xy.size == 2:
        xy = xy[None]
    if xy.ndim != 2 or xy.shape[1] != 2 or xy.shape[0] == 0:
        raise PromptError(f"points must be a list of [x, y] pairs, got shape {xy.shape}")
    if labels is None:
        raise PromptError("points need labels: one per point, 1 for foreground, 0 for background")
    lab = _as_float_array(labels, "labels").reshape(-1)
    if lab.shape[0] != xy.shape[0]:
        raise PromptError(f"got {xy.shape[0]} points but {lab.shape[0]} labels; give one label per point")
    if not np.isin(lab, (0, 1)).all():
        raise PromptError(f"labels must be 1 (foreground) or 0 (background), got {lab.tolist()}")
    _check_inside(xy, "point", height, width)
    return xy, lab.astype(np.int32)


def _box(box: Any, height: int, width: int) -> np.ndarray:
    corners = _as_float_array(box, "box").reshape(-1)
    if corners.shape[0] != 4:
        raise PromptError(f"box must be [x0, y0, x1, y1], got {corners.shape[0]} numbers")
    if corners[0] > corners[2] or corners[1] > corners[3]:
        raise PromptError(f"box {corners.tolist()} must satisfy x0 <= x1 and y0 <= y1")
    corners = corners.reshape(2, 2)
    _check_inside(corners, "box corner", height, width)
    return corners


def _mask(mask: Any, height: int, width: int, image_size: int, device: torch.device) -> Tensor:
    array = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    if array.shape != (height, width):
        raise PromptError(
            f"mask must have the frame's size (H, W) = ({height}, {width}), got shape {array.shape}"
        )
    binary = torch.from_numpy(np.ascontiguousarray(array != 0)).to(device)[None, None].float()
    if (height, width) != (image_size, image_size):
        # parity: the official predictor resizes the mask (antialiased) and thresholds at 0.5
        binary = F.interpolate(
            binary, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=True
        )
        binary = (binary >= 0.5).float()
    return binary


def parse_prompt(
    *,
    points: Any,
    labels: Any,
    box: Any,
    mask: Any,
    height: int,
    width: int,
    image_size: int,
    device: torch.device,
) -> Prompt:
    """Check one prompt (clicks and/or a box, or a mask) against an H x W frame."""
    if mask is not None:
        if points is not None or box is not None:
            raise PromptError("give either a mask or points/box on a frame, not both (make two calls)")
        return Prompt(
            coords=None, labels=None, mask=_mask(mask, height, width, image_size, device), has_box=False
        )
    if points is None and box is None:
        if labels is not None:
            raise PromptError("labels were given without points")
        raise PromptError("a prompt needs points (with labels), a box, or a mask")
    parts_xy, parts_lab = [], []
    if box is not None:
        parts_xy.append(_box(box, height, width))
        parts_lab.append(np.array([2, 3], dtype=np.int32))
    if points is not None:
        xy, lab = _points(points, labels, height, width)
        parts_xy.append(xy)
        parts_lab.append(lab)
    elif labels is not None:
        raise PromptError("labels were given without points")
    coords = torch.tensor(np.concatenate(parts_xy), dtype=torch.float32)[None]  # (1, P, 2)
    # parity: normalised by the frame size, then scaled to the model input, in float32
    coords = coords / torch.tensor([width, height]) * image_size
    labels_t = torch.from_numpy(np.concatenate(parts_lab))[None]
    return Prompt(coords=coords.to(device), labels=labels_t.to(device), mask=None, has_box=box is not None)

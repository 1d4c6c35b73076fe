"""Mask arithmetic shared by the predictors: components, stability, boxes, NMS, crops."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import torch
from scipy import ndimage
from torch import Tensor

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


def connected_components(mask: Tensor) -> tuple[Tensor, Tensor]:
    """8-connected components of boolean masks (N, 1, H, W).

    Returns labels (N, 1, H, W) int32 (0 = background) and, per pixel, the area of
    its component (0 on background), like the official CUDA extension.
    """
    mask_np = mask.detach().to("cpu", torch.bool).numpy()
    labels = np.zeros(mask_np.shape, dtype=np.int32)
    areas = np.zeros(mask_np.shape, dtype=np.int32)
    for i in range(mask_np.shape[0]):
        lab, num = ndimage.label(mask_np[i, 0], structure=_EIGHT_CONNECTED)
        if num:
            sizes = np.bincount(lab.ravel())
            sizes[0] = 0
            labels[i, 0] = lab
            areas[i, 0] = sizes[lab]
    return torch.from_numpy(labels).to(mask.device), torch.from_numpy(areas).to(mask.device)


def fill_holes_and_sprinkles(
    logits: Tensor, *, threshold: float = 0.0, max_hole_area: int = 0, max_sprinkle_area: int = 0
) -> Tensor:
    """Flip small background holes to foreground and small foreground specks to background.

    logits: (N, M, H, W). 8-connected components of at most `max_*_area` pixels are set
    to threshold +/- 10, as the official GPU post-processing does. Holes (logit <=
    threshold) and specks (> threshold) are both found on the input logits, so a
    speck that only touches a filled hole is still removed.
    """
    if max_hole_area <= 0 and max_sprinkle_area <= 0:
        return logits
    flat = logits.flatten(0, 1).unsqueeze(1)  # (N*M, 1, H, W)
    out = logits
    if max_hole_area > 0:
        labels, areas = connected_components(flat <= threshold)
        is_hole = ((labels > 0) & (areas <= max_hole_area)).reshape_as(logits)
        out = torch.where(is_hole, torch.full_like(out, threshold + 10.0), out)
    if max_sprinkle_area > 0:
        labels, areas = connected_components(flat > threshold)
        is_speck = ((labels > 0) & (areas <= max_sprinkle_area)).reshape_as(logits)
        out = torch.where(is_speck, torch.full_like(out, threshold - 10.0), out)
    return out


def stability_score(logits: Tensor, threshold: float, offset: float) -> Tensor:
    """IoU of the masks thresholded at threshold + offset and threshold - offset: (...,)."""
    inner = (logits > threshold + offset).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    outer = (logits > threshold - offset).sum(-1, dtype=torch.int16).sum(-1, dtype=torch.int32)
    return inner / outer


def masks_to_boxes(masks: Tensor) -> Tensor:
    """XYXY boxes (..., 4) around boolean masks (..., H, W), inclusive pixel indices; 0s if empty."""
    if masks.numel() == 0:
        return torch.zeros(*masks.shape[:-2], 4, device=masks.device, dtype=torch.long)
    h, w = masks.shape[-2:]
    rows = masks.any(dim=-1)  # (..., H)
    cols = masks.any(dim=-2)  # (..., W)
    row_idx = torch.arange(h, device=masks.device)
    col_idx = torch.arange(w, device=masks.device)
    bottom = (rows * row_idx).amax(dim=-1)
    top = torch.where(rows, row_idx, h).amin(dim=-1)
    right = (cols * col_idx).amax(dim=-1)
    left = torch.where(cols, col_idx, w).amin(dim=-1)
    boxes = torch.stack([left, top, right, bottom], dim=-1)
    empty = ~rows.any(dim=-1)
    return boxes * (~empty).unsqueeze(-1)


def box_area(boxes: Tensor) -> Tensor:
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def box_iou(boxes_a: Tensor, boxes_b: Tensor) -> Tensor:
    """Pairwise IoU (A, B) of XYXY boxes."""
    lt = torch.maximum(boxes_a[:, None, :2], boxes_b[None, :, :2])
    rb = torch.minimum(boxes_a[:, None, 2:], boxes_b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(dim=-1)
    union = box_area(boxes_a)[:, None] + box_area(boxes_b)[None, :] - inter
    return inter / union


def nms(boxes: Tensor, scores: Tensor, iou_threshold: float) -> Tensor:
    """Indices kept by greedy non-maximum suppression, highest score first.

    Same result as torchvision's `nms`: stable descending sort, a box is dropped
    when its IoU with a kept box exceeds the threshold.
    """
    if boxes.numel() == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    boxes = boxes.float()
    order = torch.sort(scores, descending=True, stable=True).indices
    iou = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.tensor(keep, dtype=torch.long, device=order.device)]


def point_grid(n_per_side: int) -> np.ndarray:
    """(n*n, 2) points evenly spaced in [0, 1]^2, cell centres, x varying fastest."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs = np.tile(side[None, :], (n_per_side, 1))
    ys = np.tile(side[:, None], (1, n_per_side))
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def layer_point_grids(n_per_side: int, n_layers: int, scale_per_layer: int) -> list[np.ndarray]:
    """One grid per crop layer; layer i has n_per_side / scale_per_layer**i points per side."""
    return [point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def crop_boxes(image_hw: tuple[int, int], n_layers: int, overlap_ratio: float) -> list[tuple[tuple[int, int, int, int], int]]:
    """XYXY crop boxes with their layer: the whole image, then (2**i)**2 overlapping crops per layer i."""
    im_h, im_w = image_hw
    short_side = min(im_h, im_w)
    boxes: list[tuple[tuple[int, int, int, int], int]] = [((0, 0, im_w, im_h), 0)]

    def crop_len(orig_len: int, n_crops: int, overlap: int) -> int:
        return int(math.ceil((overlap * (n_crops - 1) + orig_len) / n_crops))

    for layer in range(n_layers):
        per_side = 2 ** (layer + 1)
        overlap = int(overlap_ratio * short_side * (2 / per_side))
        crop_w, crop_h = crop_len(im_w, per_side, overlap), crop_len(im_h, per_side, overlap)
        xs = [int((crop_w - overlap) * i) for i in range(per_side)]
        ys = [int((crop_h - overlap) * i) for i in range(per_side)]
        for x0, y0 in product(xs, ys):
            boxes.append(((x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)), layer + 1))
    return boxes


def is_box_near_crop_edge(
    boxes: Tensor, crop_box: tuple[int, int, int, int], image_box: tuple[int, int, int, int], atol: float = 20.0
) -> Tensor:
    """(N,) True for crop-relative boxes touching a crop edge that is not an image edge."""
    crop_t = torch.as_tensor(crop_box, dtype=torch.float, device=boxes.device)
    image_t = torch.as_tensor(image_box, dtype=torch.float, device=boxes.device)
    boxes = shift_boxes(boxes, crop_box).float()
    near_crop = torch.isclose(boxes, crop_t[None, :], atol=atol, rtol=0)
    near_image = torch.isclose(boxes, image_t[None, :], atol=atol, rtol=0)
    return (near_crop & ~near_image).any(dim=1)


def shift_boxes(boxes: Tensor, crop_box: tuple[int, int, int, int]) -> Tensor:
    x0, y0 = crop_box[:2]
    return boxes + torch.tensor([[x0, y0, x0, y0]], device=boxes.device)


def shift_points(points: Tensor, crop_box: tuple[int, int, int, int]) -> Tensor:
    x0, y0 = crop_box[:2]
    return points + torch.tensor([[x0, y0]], device=points.device)


def pad_to_image(masks: Tensor, crop_box: tuple[int, int, int, int], image_hw: tuple[int, int]) -> Tensor:
    """Crop-sized masks (N, h, w) placed back into the full image (N, H, W)."""
    x0, y0, x1, y1 = crop_box
    im_h, im_w = image_hw
    if (x0, y0, x1, y1) == (0, 0, im_w, im_h):
        return masks
    pad_x, pad_y = im_w - (x1 - x0), im_h - (y1 - y0)
    return torch.nn.functional.pad(masks, (x0, pad_x - x0, y0, pad_y - y0), value=0)


def remove_small_regions(mask: np.ndarray, area_thresh: float, *, mode: str) -> tuple[np.ndarray, bool]:
    """Remove 'holes' or 'islands' smaller than area_thresh from a boolean mask.

    Returns the new mask and whether it changed. If every island is small, the
    largest one is kept.
    """
    if mode not in ("holes", "islands"):
        raise ValueError(f"mode must be 'holes' or 'islands', got {mode!r}")
    fill_holes = mode == "holes"
    working = mask ^ fill_holes  # the regions to inspect are foreground
    labels, num = ndimage.label(working, structure=_EIGHT_CONNECTED)
    if num == 0:
        return mask, False
    sizes = np.bincount(labels.ravel())[1:]
    small = [i + 1 for i, s in enumerate(sizes) if s < area_thresh]
    if not small:
        return mask, False
    if fill_holes:
        # label 0 is the original foreground; the small holes join it
        return np.isin(labels, [0, *small]), True
    keep = [i for i in range(1, num + 1) if i not in small] or [int(np.argmax(sizes)) + 1]
    return np.isin(labels, keep), True

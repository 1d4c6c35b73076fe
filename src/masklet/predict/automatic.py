"""`AutomaticMaskGenerator`: segment everything by prompting a grid of points."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from masklet.errors import ConfigError
from masklet.io.masks import decode_rle, encode_rles, rle_area
from masklet.model.sam2 import SAM2Model
from masklet.predict import mask_ops
from masklet.predict.image import ImagePredictor
from masklet.predict.transforms import as_rgb_array, coords_to_model

OutputMode = Literal["binary_mask", "coco_rle"]


@dataclass(frozen=True, slots=True)
class GeneratedMask:
    """One mask found by the generator; boxes are XYWH pixels of the original image."""

    segmentation: Any  # (H, W) bool array, or a COCO RLE dict {"size": [H, W], "counts": str}
    area: int
    bbox: list[float]
    predicted_iou: float
    point_coords: list[list[float]]
    stability_score: float
    crop_box: list[float]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(slots=True)
class _Candidates:
    """Per-mask arrays kept aligned through filtering (one row per candidate mask)."""

    rles: list[dict[str, Any]]
    boxes: Tensor  # (N, 4) XYXY in the original image
    iou_preds: Tensor  # (N,)
    stability: Tensor  # (N,)
    points: Tensor  # (N, 2) original-image pixels
    crop_boxes: Tensor  # (N, 4) XYXY

    @classmethod
    def empty(cls) -> _Candidates:
        z = torch.zeros
        return cls([], z(0, 4), z(0), z(0), z(0, 2), z(0, 4))

    def keep(self, index: Tensor) -> _Candidates:
        idx = index.nonzero().flatten() if index.dtype == torch.bool else index
        return _Candidates(
            [self.rles[i] for i in idx.tolist()], self.boxes[idx], self.iou_preds[idx],
            self.stability[idx], self.points[idx], self.crop_boxes[idx],
        )

    def extend(self, other: _Candidates) -> _Candidates:
        return _Candidates(
            self.rles + other.rles,
            torch.cat([self.boxes, other.boxes.to(self.boxes.dtype)]),
            torch.cat([self.iou_preds, other.iou_preds]),
            torch.cat([self.stability, other.stability]),
            torch.cat([self.points, other.points]),
            torch.cat([self.crop_boxes, other.crop_boxes.to(self.crop_boxes.dtype)]),
        )


class AutomaticMaskGenerator:
    """Masks for a whole image from a point grid, filtered by quality and de-duplicated.

    Same arguments and results as the official generator. `min_mask_region_area`
    fills holes and removes specks up to that area in the low-res logits on every
    device (the official code needs its CUDA extension for that). `use_m2m` refines
    every candidate once: its low-res logits go back in as the mask prompt with its
    point, single-mask output, and the refined mask and IoU replace the first ones
    before any filtering.
    """

    def __init__(
        self,
        model: SAM2Model,
        *,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: OutputMode = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
        progress: bool = False,
    ) -> None:
        if (points_per_side is None) == (point_grids is None):
            raise ConfigError("give exactly one of points_per_side and point_grids")
        if output_mode not in ("binary_mask", "coco_rle"):
            raise ConfigError(f"output_mode must be 'binary_mask' or 'coco_rle', got {output_mode!r}")
        if points_per_batch < 1:
            raise ConfigError(f"points_per_batch must be >= 1, got {points_per_batch}")
        if points_per_side is not None:
            point_grids = mask_ops.layer_point_grids(points_per_side, crop_n_layers, crop_n_points_downscale_factor)
        assert point_grids is not None
        if len(point_grids) < crop_n_layers + 1:
            raise ConfigError(f"{crop_n_layers} crop layers need {crop_n_layers + 1} point grids, got {len(point_grids)}")
        # parity: holes and specks are cleaned up at the predictor's threshold 0, not mask_threshold
        self.predictor = ImagePredictor(
            model, max_hole_area=min_mask_region_area, max_sprinkle_area=min_mask_region_area,
        )
        self.point_grids = point_grids
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.mask_threshold = mask_threshold
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.use_m2m = use_m2m
        self.multimask_output = multimask_output
        self.progress = progress

    @torch.inference_mode()
    def generate(self, image: Any) -> list[GeneratedMask]:
        """All masks found in an HxWx3 uint8 RGB image."""
        image = as_rgb_array(image)
        image_hw = image.shape[:2]
        crops = mask_ops.crop_boxes(image_hw, self.crop_n_layers, self.crop_overlap_ratio)
        found = _Candidates.empty()
        for crop_box, layer in tqdm(crops, desc="crops", disable=not self.progress or len(crops) == 1):
            found = found.extend(self._process_crop(image, crop_box, layer))
        if len(crops) > 1 and len(found.rles):
            # between crops prefer masks from smaller crops
            scores = 1 / mask_ops.box_area(found.crop_boxes.float())
            found = found.keep(mask_ops.nms(found.boxes.float(), scores, self.crop_nms_thresh))
        return [self._record(found, i) for i in range(len(found.rles))]

    def _record(self, found: _Candidates, i: int) -> GeneratedMask:
        rle = found.rles[i]
        segmentation = rle if self.output_mode == "coco_rle" else decode_rle(rle)
        x0, y0, x1, y1 = found.boxes[i].float().tolist()
        cx0, cy0, cx1, cy1 = found.crop_boxes[i].float().tolist()
        return GeneratedMask(
            segmentation=segmentation,
            area=rle_area(rle),
            bbox=[x0, y0, x1 - x0, y1 - y0],
            predicted_iou=float(found.iou_preds[i]),
            point_coords=[found.points[i].float().tolist()],
            stability_score=float(found.stability[i]),
            crop_box=[cx0, cy0, cx1 - cx0, cy1 - cy0],
        )

    def _process_crop(self, image: np.ndarray, crop_box: tuple[int, int, int, int], layer: int) -> _Candidates:
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1, :]
        crop_hw = crop.shape[:2]
        self.predictor.set_image(crop)
        points = self.point_grids[layer] * np.array(crop_hw)[None, ::-1]
        found = _Candidates.empty()
        starts = range(0, len(points), self.points_per_batch)
        for start in tqdm(starts, desc="point batches", disable=not self.progress):
            batch = points[start : start + self.points_per_batch]
            found = found.extend(self._process_batch(batch, crop_hw, crop_box, image.shape[:2]))
        self.predictor.reset_predictor()
        if not len(found.rles):
            return found
        found = found.keep(mask_ops.nms(found.boxes.float(), found.iou_preds, self.box_nms_thresh))
        found.boxes = mask_ops.shift_boxes(found.boxes, crop_box)
        found.points = mask_ops.shift_points(found.points, crop_box)
        found.crop_boxes = torch.tensor([crop_box] * len(found.rles), dtype=torch.float32).reshape(-1, 4)
        return found

    def _process_batch(
        self, points_np: np.ndarray, crop_hw: tuple[int, int], crop_box: tuple[int, int, int, int],
        image_hw: tuple[int, int],
    ) -> _Candidates:
        model = self.predictor.model
        points = torch.as_tensor(points_np, dtype=torch.float32)
        coords = coords_to_model(points, crop_hw, model.config.image_size)[:, None, :].to(model.device)
        labels = torch.ones(coords.shape[0], 1, dtype=torch.int32, device=model.device)
        logits, iou, low_res = self.predictor.predict_tensors(
            point_coords=coords, point_labels=labels, multimask_output=self.multimask_output
        )
        num_candidates = logits.shape[1]
        pts = points.repeat_interleave(num_candidates, dim=0)
        if self.use_m2m:
            logits, iou = self._refine(coords.repeat_interleave(num_candidates, dim=0), low_res.flatten(0, 1))
        logits = logits.flatten(0, 1).cpu()  # (B*M, h, w)
        iou_preds = iou.flatten(0, 1).float().cpu()
        keep = torch.ones(len(iou_preds), dtype=torch.bool)
        if self.pred_iou_thresh > 0.0:
            keep &= iou_preds > self.pred_iou_thresh
        logits, iou_preds, pts = logits[keep], iou_preds[keep], pts[keep]
        stability = mask_ops.stability_score(logits, self.mask_threshold, self.stability_score_offset)
        if self.stability_score_thresh > 0.0:
            keep = stability >= self.stability_score_thresh
            logits, iou_preds, pts, stability = logits[keep], iou_preds[keep], pts[keep], stability[keep]
        masks = logits > self.mask_threshold
        boxes = mask_ops.masks_to_boxes(masks)
        image_box = (0, 0, image_hw[1], image_hw[0])
        inside = ~mask_ops.is_box_near_crop_edge(boxes, crop_box, image_box)
        masks, boxes, iou_preds, pts, stability = (
            masks[inside], boxes[inside], iou_preds[inside], pts[inside], stability[inside])
        masks = mask_ops.pad_to_image(masks, crop_box, image_hw)
        return _Candidates(
            rles=encode_rles(masks.numpy()),
            boxes=boxes, iou_preds=iou_preds, stability=stability.float(), points=pts,
            crop_boxes=torch.zeros(len(boxes), 4),
        )

    def _refine(self, coords: Tensor, low_res: Tensor) -> tuple[Tensor, Tensor]:
        """One mask-to-mask step: (K, 1, 2) model-input points with their (K, 4h, 4w) low-res
        logits as the mask prompt -> logits (K, 1, H, W) and IoU (K, 1), in batches."""
        labels = torch.ones(coords.shape[0], 1, dtype=torch.int32, device=coords.device)
        logits, ious = [], []
        for start in range(0, coords.shape[0], self.points_per_batch):
            part = slice(start, start + self.points_per_batch)
            out_logits, out_iou, _ = self.predictor.predict_tensors(
                point_coords=coords[part], point_labels=labels[part],
                mask_input=low_res[part, None], multimask_output=False,
            )
            logits.append(out_logits)
            ious.append(out_iou)
        return torch.cat(logits), torch.cat(ious)

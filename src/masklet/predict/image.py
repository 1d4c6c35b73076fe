"""`ImagePredictor`: embed an image once, then prompt it with clicks, boxes and masks."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from masklet.errors import PromptError, SessionError
from masklet.model.mask_decoder import PreparedImage
from masklet.model.sam2 import ImageFeatures, SAM2Model
from masklet.predict.feature_cache import FeatureCache
from masklet.predict.mask_ops import fill_holes_and_sprinkles
from masklet.predict.transforms import as_rgb_array, coords_to_model, preprocess_image, upsample_logits

LOW_RES_LOGIT_CLAMP = 32.0  # parity: the official predictor clamps returned low-res logits


@dataclass(frozen=True, slots=True)
class _Prompt:
    """One image's prompts, validated and mapped to model-input pixels."""

    coords: Tensor | None  # (B, P, 2) model-input pixels; boxes first (labels 2, 3), then clicks
    labels: Tensor | None  # (B, P) int32
    mask_input: Tensor | None  # (B, 1, 4h, 4w) logits

    @property
    def batch(self) -> int:
        if self.coords is not None:
            return self.coords.shape[0]
        return 1 if self.mask_input is None else self.mask_input.shape[0]


class ImagePredictor:
    """Image-path SAM 2 with the official predictor's semantics.

    Coordinates are (x, y) pixels of the original image; masks come back at the
    original size, low-res logits at 4x the embedding size (256 x 256 at 1024 input).
    """

    def __init__(
        self, model: SAM2Model, *, mask_threshold: float = 0.0, max_hole_area: float = 0.0,
        max_sprinkle_area: float = 0.0, feature_cache: FeatureCache | None = None,
    ) -> None:
        self.model = model
        self.feature_cache = feature_cache  # encodings shared with other predictors (a server's annotators)
        self.mask_threshold = mask_threshold
        # holes / specks up to this many low-res pixels are filled / removed before upsampling
        self.max_hole_area = max_hole_area
        self.max_sprinkle_area = max_sprinkle_area
        self._features: ImageFeatures | None = None
        self._image_embed: Tensor | None = None  # (B, C, h, w) with the no-memory embedding
        self._orig_hw: list[tuple[int, int]] = []
        self._is_batch = False
        self._prepared: dict[int, PreparedImage] = {}

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def is_image_set(self) -> bool:
        return self._features is not None

    def reset_predictor(self) -> None:
        self._features, self._image_embed, self._orig_hw, self._is_batch = None, None, [], False
        self._prepared = {}  # image index -> its decoder inputs, made at its first prompt

    @torch.inference_mode()
    def set_image(self, image: Any, *, cache_key: Hashable | None = None) -> None:
        """Embed one HxWx3 uint8 RGB image (numpy array or PIL image).

        `cache_key`: with a feature cache, what names this image there (e.g. a video's digest
        and the frame index), so that a hit neither hashes nor preprocesses the pixels.
        """
        self._embed([as_rgb_array(image)], cache_key=cache_key)
        self._is_batch = False

    @torch.inference_mode()
    def set_image_batch(self, images: Sequence[Any]) -> None:
        """Embed several images at once; prompt them with `predict_batch`."""
        if isinstance(images, np.ndarray) or not len(images):
            raise PromptError("set_image_batch takes a non-empty list of HxWx3 uint8 images")
        self._embed([as_rgb_array(img, what=f"image {i}") for i, img in enumerate(images)])
        self._is_batch = True

    def _embed(self, images: list[np.ndarray], *, cache_key: Hashable | None = None) -> None:
        self.reset_predictor()
        size = self.model.config.image_size

        def batch() -> Tensor:
            return torch.stack([preprocess_image(img, size) for img in images]).to(self.device)

        if self.feature_cache is None or len(images) != 1:
            self._features = self.model.encode_image(batch())
        else:
            self._features = self.feature_cache.features(
                self.model, batch, self.model.encode_image, key=cache_key
            )
        self._image_embed = self.model.image_embedding(self._features)
        self._orig_hw = [img.shape[:2] for img in images]

    def get_image_embedding(self) -> Tensor:
        """(B, C, h, w) embedding of the current image(s)."""
        if self._image_embed is None:
            raise SessionError("no image is set: call set_image(...) or set_image_batch(...) first")
        return self._image_embed

    @torch.inference_mode()
    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Masks, IoU predictions and low-res logits for the current image.

        point_coords: (P, 2) or (B, P, 2) pixels; point_labels: (P,) or (B, P), 1 fg, 0 bg;
        box: (4,) or (B, 4) XYXY pixels; mask_input: (1, 256, 256) or (B, 1, 256, 256) logits.
        Returns masks (M, H, W) or (B, M, H, W) (bool, or float logits with
        return_logits), scores (M,) or (B, M), low-res logits (M, 256, 256) or (B, M, 256, 256).
        """
        if self._features is None:
            raise SessionError("no image is set: call set_image(...) before predict(...)")
        if self._is_batch:
            raise SessionError("images were set with set_image_batch(...): use predict_batch(...)")
        return self._predict_one(
            0, point_coords, point_labels, box, mask_input, multimask_output, return_logits, normalize_coords
        )

    @torch.inference_mode()
    def predict_batch(
        self,
        point_coords_batch: Sequence[np.ndarray | None] | None = None,
        point_labels_batch: Sequence[np.ndarray | None] | None = None,
        box_batch: Sequence[np.ndarray | None] | None = None,
        mask_input_batch: Sequence[np.ndarray | None] | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
        normalize_coords: bool = True,
    ) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """`predict` for each image set by `set_image_batch`; one list entry per image."""
        if self._features is None or not self._is_batch:
            raise SessionError("call set_image_batch(...) before predict_batch(...)")
        num = len(self._orig_hw)
        per_image = []
        for name, values in (("point_coords_batch", point_coords_batch), ("point_labels_batch", point_labels_batch),
                             ("box_batch", box_batch), ("mask_input_batch", mask_input_batch)):
            if values is not None and len(values) != num:
                raise PromptError(f"{name} has {len(values)} entries for {num} images")
            per_image.append(values if values is not None else [None] * num)
        results = [
            self._predict_one(i, *(v[i] for v in per_image), multimask_output, return_logits, normalize_coords)
            for i in range(num)
        ]
        masks, scores, low_res = zip(*results, strict=True)
        return list(masks), list(scores), list(low_res)

    def _predict_one(
        self, index: int, point_coords: Any, point_labels: Any, box: Any, mask_input: Any,
        multimask_output: bool, return_logits: bool, normalize_coords: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        prompt = self._prepare_prompt(
            point_coords, point_labels, box, mask_input, self._orig_hw[index], normalize_coords
        )
        logits, iou, low_res = self.predict_tensors(
            point_coords=prompt.coords, point_labels=prompt.labels, mask_input=prompt.mask_input,
            multimask_output=multimask_output, index=index,
        )
        masks = logits if return_logits else logits > self.mask_threshold
        results = [t.cpu().numpy() if t.dtype == torch.bool else t.float().cpu().numpy()
                   for t in (masks, iou, low_res)]
        if prompt.batch == 1:  # parity: a single prompt set loses its batch dimension
            results = [r[0] for r in results]
        return results[0], results[1], results[2]

    def predict_tensors(
        self,
        *,
        point_coords: Tensor | None,
        point_labels: Tensor | None,
        mask_input: Tensor | None = None,
        multimask_output: bool = True,
        index: int = 0,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The tensor core of `predict`, prompts already in model-input pixels.

        point_coords: (B, P, 2), boxes as leading corner points labelled 2 and 3;
        point_labels: (B, P). Returns logits (B, M, H, W) at the original size,
        IoU predictions (B, M) and clamped low-res logits (B, M, 4h, 4w).
        """
        if self._features is None or self._image_embed is None:
            raise SessionError("no image is set: call set_image(...) first")
        prepared = None
        if point_coords is not None or mask_input is not None:
            prepared = self._prepared.get(index)
            if prepared is None:
                prepared = self._prepared[index] = self.model.prepare_image(self._image_embed[index : index + 1])
        out = self.model.predict_masks(
            self._image_embed[index : index + 1],
            self._features.select(index).high_res_features,
            point_coords=point_coords,
            point_labels=point_labels,
            mask_input=mask_input,
            multimask_output=multimask_output,
            repeat_image=point_coords is not None and point_coords.shape[0] > 1,
            prepared=prepared,
        )
        cleaned = fill_holes_and_sprinkles(
            out.mask_logits, threshold=self.mask_threshold,
            max_hole_area=self.max_hole_area, max_sprinkle_area=self.max_sprinkle_area,
        )
        logits = upsample_logits(cleaned, self._orig_hw[index])  # (B, M, H, W)
        low_res = out.mask_logits.clamp(-LOW_RES_LOGIT_CLAMP, LOW_RES_LOGIT_CLAMP)
        return logits, out.iou, low_res

    def _prepare_prompt(
        self, point_coords: Any, point_labels: Any, box: Any, mask_input: Any,
        orig_hw: tuple[int, int], normalize_coords: bool,
    ) -> _Prompt:
        size = self.model.config.image_size
        h, w = orig_hw
        coords = labels = None
        if point_coords is not None:
            if point_labels is None:
                raise PromptError("point_labels must be given with point_coords (1 = foreground, 0 = background)")
            coords = _as_tensor(point_coords, torch.float32, "point_coords")
            labels = _as_tensor(point_labels, torch.int32, "point_labels")
            if coords.ndim == 2:
                coords, labels = coords[None], labels[None]
            if coords.ndim != 3 or coords.shape[-1] != 2 or labels.shape != coords.shape[:2]:
                raise PromptError(
                    f"point_coords must be (P, 2) or (B, P, 2) with point_labels (P,) or (B, P); "
                    f"got {tuple(coords.shape)} and {tuple(labels.shape)}"
                )
            if normalize_coords:
                _check_inside(coords, h, w, "point")
                coords = coords_to_model(coords, orig_hw, size)
            else:
                coords = coords * size
        elif point_labels is not None:
            raise PromptError("point_labels were given without point_coords")
        if box is not None:
            boxes = _as_tensor(box, torch.float32, "box").reshape(-1, 4)
            bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
            if bool(bad.any()):
                raise PromptError(
                    f"box {boxes[bad][0].tolist()} is empty or inverted: expected x0 < x1 and y0 < y1 (XYXY pixels)"
                )
            corners = boxes.reshape(-1, 2, 2)
            if normalize_coords:
                _check_inside(corners, h, w, "box corner")
                corners = coords_to_model(corners, orig_hw, size)
            else:
                corners = corners * size
            corner_labels = torch.tensor([[2, 3]], dtype=torch.int32).repeat(corners.shape[0], 1)
            if coords is not None:
                if coords.shape[0] != corners.shape[0]:
                    raise PromptError(f"{corners.shape[0]} boxes but {coords.shape[0]} point sets; give one per box")
                coords, labels = torch.cat([corners, coords], dim=1), torch.cat([corner_labels, labels], dim=1)
            else:
                coords, labels = corners, corner_labels
        mask_t = None
        if mask_input is not None:
            mask_t = _as_tensor(mask_input, torch.float32, "mask_input")
            if mask_t.ndim == 3:
                mask_t = mask_t[None]
            side = 4 * self.model.config.image_embedding_size
            if mask_t.ndim != 4 or mask_t.shape[1:] != (1, side, side):
                raise PromptError(
                    f"mask_input must be low-res logits of shape (1, {side}, {side}) or (B, 1, {side}, {side}) "
                    f"(the third output of a previous predict); got {tuple(mask_t.shape)}"
                )
        device = self.device
        return _Prompt(
            coords=None if coords is None else coords.to(device),
            labels=None if labels is None else labels.to(device),
            mask_input=None if mask_t is None else mask_t.to(device),
        )


def _as_tensor(value: Any, dtype: torch.dtype, name: str) -> Tensor:
    try:
        tensor = torch.as_tensor(np.asarray(value), dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise PromptError(f"{name} must be numeric array-like: {exc}") from exc
    if dtype.is_floating_point and not bool(torch.isfinite(tensor).all()):
        raise PromptError(f"{name} contains NaN or infinite values")
    return tensor


def _check_inside(coords: Tensor, h: int, w: int, what: str) -> None:
    """Raise PromptError for (x, y) pixels outside the [0, W] x [0, H] image."""
    outside = (coords[..., 0] < 0) | (coords[..., 0] > w) | (coords[..., 1] < 0) | (coords[..., 1] > h)
    if bool(outside.any()):
        x, y = coords[outside][0].tolist()
        raise PromptError(f"{what} ({x:g}, {y:g}) lies outside the {w}x{h} image (x in [0, {w}], y in [0, {h}])")


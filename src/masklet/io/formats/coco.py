"""COCO instance-segmentation JSON (images, annotations with RLE segmentation, categories).

Segmentations are held as compressed RLE: uncompressed RLE and polygons are accepted on read
and rasterised to RLE (so a polygon file comes back as RLE). `area` and `bbox` keep the
values read; `CocoAnnotation.from_mask` computes them. Keys this module does not model
(`info`, `licenses`, per-record extras such as `score`) are kept and written back.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from masklet.errors import FormatError
from masklet.io._files import read_json, write_json_atomic
from masklet.io.formats._check import (
    NUMBER,
    bbox_field,
    extra_fields,
    get_field,
    obj_list,
    top_object,
    typed,
    unique_ids,
)
from masklet.io.masks import RleLike, RleMask, validate_rle

__all__ = [
    "CocoAnnotation",
    "CocoCategory",
    "CocoDataset",
    "CocoImage",
    "parse_segmentation",
    "read_coco_json",
    "write_coco_json",
]


@dataclass(frozen=True, slots=True)
class CocoCategory:
    id: int
    name: str
    supercategory: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "name": self.name}
        if self.supercategory is not None:
            out["supercategory"] = self.supercategory
        return {**out, **self.extra}

    @classmethod
    def from_json_dict(cls, obj: dict[str, Any], where: str) -> CocoCategory:
        sup = obj.get("supercategory")
        return cls(
            id=get_field(obj, "id", (int,), where),
            name=get_field(obj, "name", (str,), where),
            supercategory=None if sup is None else typed(sup, (str,), f"{where}.supercategory"),
            extra=extra_fields(obj, ("id", "name", "supercategory")),
        )


@dataclass(frozen=True, slots=True)
class CocoImage:
    id: int
    file_name: str
    height: int
    width: int
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json_dict(self) -> dict[str, Any]:
        out = {"id": self.id, "file_name": self.file_name, "height": self.height, "width": self.width}
        return {**out, **self.extra}


@dataclass(frozen=True, slots=True)
class CocoAnnotation:
    id: int
    image_id: int
    category_id: int
    rle: RleMask
    area: float
    bbox: tuple[float, float, float, float]  # (x, y, w, h) pixels
    iscrowd: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"score": 0.9} in result files

    @classmethod
    def from_mask(
        cls,
        mask: np.ndarray | RleLike,
        *,
        id: int,
        image_id: int,
        category_id: int,
        iscrowd: int = 0,
        extra: Mapping[str, Any] | None = None,
    ) -> CocoAnnotation:
        """Build an annotation from a (H, W) mask or RLE, with area and bbox computed."""
        rle = RleMask.from_mask(mask) if isinstance(mask, np.ndarray) else validate_rle(mask)
        return cls(
            id=id,
            image_id=image_id,
            category_id=category_id,
            rle=rle,
            area=float(rle.area),
            bbox=rle.bbox,
            iscrowd=iscrowd,
            extra=dict(extra or {}),
        )

    def to_json_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "image_id": self.image_id,
            "category_id": self.category_id,
            "segmentation": self.rle.to_dict(),
            "area": self.area,
            "bbox": list(self.bbox),
            "iscrowd": self.iscrowd,
        }
        return {**out, **self.extra}


@dataclass(frozen=True, slots=True)
class CocoDataset:
    images: tuple[CocoImage, ...]
    annotations: tuple[CocoAnnotation, ...]
    categories: tuple[CocoCategory, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)  # info, licenses, ...

    def to_json_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "images": [i.to_json_dict() for i in self.images],
            "annotations": [a.to_json_dict() for a in self.annotations],
            "categories": [c.to_json_dict() for c in self.categories],
        }

    @classmethod
    def from_json_dict(cls, obj: Any, *, source: str = "<COCO dict>") -> CocoDataset:
        """Validate a loaded COCO JSON object; `source` names it in errors."""
        obj = top_object(obj, source, "a COCO file")
        images = tuple(
            _parse_image(o, f"{source}: images[{i}]") for i, o in enumerate(obj_list(obj, "images", source))
        )
        by_id = unique_ids(images, f"{source}: images")
        cats = tuple(
            CocoCategory.from_json_dict(o, f"{source}: categories[{i}]")
            for i, o in enumerate(obj_list(obj, "categories", source))
        )
        cat_ids = unique_ids(cats, f"{source}: categories")
        anns = []
        for i, o in enumerate(obj_list(obj, "annotations", source)):
            where = f"{source}: annotations[{i}]"
            image_id = get_field(o, "image_id", (int,), where)
            if image_id not in by_id:
                raise FormatError(f"{where}.image_id: {image_id} is not the id of any image in the file")
            category_id = get_field(o, "category_id", (int,), where)
            if category_id not in cat_ids:
                raise FormatError(
                    f"{where}.category_id: {category_id} is not the id of any category in the file"
                )
            image = by_id[image_id]
            if "segmentation" not in o:
                raise FormatError(f"{where}: missing field 'segmentation'")
            rle = parse_segmentation(o["segmentation"], (image.height, image.width), f"{where}.segmentation")
            anns.append(
                CocoAnnotation(
                    id=get_field(o, "id", (int,), where),
                    image_id=image_id,
                    category_id=category_id,
                    rle=rle,
                    area=get_field(o, "area", NUMBER, where) if "area" in o else float(rle.area),
                    bbox=bbox_field(o["bbox"], f"{where}.bbox") if "bbox" in o else rle.bbox,
                    iscrowd=typed(o.get("iscrowd", 0), (int,), f"{where}.iscrowd"),
                    extra=extra_fields(
                        o, ("id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd")
                    ),
                )
            )
        unique_ids(anns, f"{source}: annotations")
        return cls(images, tuple(anns), cats, extra_fields(obj, ("images", "annotations", "categories")))


def parse_segmentation(seg: Any, size: tuple[int, int], where: str) -> RleMask:
    """COCO segmentation (RLE, uncompressed RLE, or polygon list) → RLE of the image size (H, W)."""
    if isinstance(seg, dict):
        return validate_rle(seg, expected_size=size, where=where)
    if isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):
        for j, poly in enumerate(seg):
            if (
                len(poly) < 6
                or len(poly) % 2
                or not all(isinstance(v, NUMBER) and not isinstance(v, bool) for v in poly)
            ):
                raise FormatError(f"{where}[{j}]: a polygon is a flat list of at least 3 (x, y) number pairs")
        h, w = size
        merged = mask_utils.merge(mask_utils.frPyObjects([[float(v) for v in p] for p in seg], h, w))
        return RleMask((h, w), merged["counts"].decode("ascii"))
    raise FormatError(f"{where}: expected an RLE {{'size', 'counts'}} or a list of polygons, got {seg!r:.60}")


def _parse_image(obj: dict[str, Any], where: str) -> CocoImage:
    height = get_field(obj, "height", (int,), where)
    width = get_field(obj, "width", (int,), where)
    if height <= 0 or width <= 0:
        raise FormatError(f"{where}: image size must be positive, got height {height}, width {width}")
    return CocoImage(
        id=get_field(obj, "id", (int,), where),
        file_name=get_field(obj, "file_name", (str,), where),
        height=height,
        width=width,
        extra=extra_fields(obj, ("id", "file_name", "height", "width")),
    )


def read_coco_json(path: str | os.PathLike[str]) -> CocoDataset:
    """Read and validate a COCO instance JSON file."""
    path = Path(path)
    return CocoDataset.from_json_dict(read_json(path), source=str(path))


def write_coco_json(path: str | os.PathLike[str], dataset: CocoDataset) -> Path:
    """Write `dataset` as COCO JSON (temporary file, then rename)."""
    return write_json_atomic(path, dataset.to_json_dict())

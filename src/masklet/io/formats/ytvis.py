"""YouTube-VIS JSON: videos, per-video instance annotations with one segmentation per frame.

`segmentations[t]` is an RLE on frame t of the video or null where the object is absent;
`areas` and `bboxes` follow the same frame indexing (null where absent). Uncompressed RLE
(as in the 2019 release) is accepted on read and written back compressed.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

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
from masklet.io.formats.coco import CocoCategory, parse_segmentation
from masklet.io.masks import RleLike, RleMask, validate_rle

__all__ = ["YtvisAnnotation", "YtvisDataset", "YtvisVideo", "read_ytvis_json", "write_ytvis_json"]

Box = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class YtvisVideo:
    id: int
    height: int
    width: int
    file_names: tuple[str, ...]  # (T,) one image per frame
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return len(self.file_names)

    def to_json_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "height": self.height,
            "width": self.width,
            "length": self.length,
            "file_names": list(self.file_names),
        }
        return {**out, **self.extra}


@dataclass(frozen=True, slots=True)
class YtvisAnnotation:
    id: int
    video_id: int
    category_id: int
    segmentations: tuple[RleMask | None, ...]  # (T,) None where the object is absent
    areas: tuple[float | None, ...]  # (T,)
    bboxes: tuple[Box | None, ...]  # (T,) (x, y, w, h)
    iscrowd: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. height/width/length copies, score

    @classmethod
    def from_masks(
        cls,
        masks: Sequence[np.ndarray | RleLike | None],
        *,
        id: int,
        video_id: int,
        category_id: int,
        iscrowd: int = 0,
        extra: Mapping[str, Any] | None = None,
    ) -> YtvisAnnotation:
        """Build a track from one mask, RLE or None per frame; empty masks become null."""
        segs: list[RleMask | None] = []
        for m in masks:
            rle = (
                None if m is None else RleMask.from_mask(m) if isinstance(m, np.ndarray) else validate_rle(m)
            )
            segs.append(None if rle is None or rle.is_empty else rle)
        return cls(
            id=id,
            video_id=video_id,
            category_id=category_id,
            segmentations=tuple(segs),
            areas=tuple(None if s is None else float(s.area) for s in segs),
            bboxes=tuple(None if s is None else s.bbox for s in segs),
            iscrowd=iscrowd,
            extra=dict(extra or {}),
        )

    def to_json_dict(self) -> dict[str, Any]:
        out = {
            "id": self.id,
            "video_id": self.video_id,
            "category_id": self.category_id,
            "segmentations": [None if s is None else s.to_dict() for s in self.segmentations],
            "areas": list(self.areas),
            "bboxes": [None if b is None else list(b) for b in self.bboxes],
            "iscrowd": self.iscrowd,
        }
        return {**out, **self.extra}


@dataclass(frozen=True, slots=True)
class YtvisDataset:
    videos: tuple[YtvisVideo, ...]
    annotations: tuple[YtvisAnnotation, ...]
    categories: tuple[CocoCategory, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)  # info, licenses, ...

    def to_json_dict(self) -> dict[str, Any]:
        return {
            **self.extra,
            "videos": [v.to_json_dict() for v in self.videos],
            "annotations": [a.to_json_dict() for a in self.annotations],
            "categories": [c.to_json_dict() for c in self.categories],
        }

    @classmethod
    def from_json_dict(cls, obj: Any, *, source: str = "<YouTube-VIS dict>") -> YtvisDataset:
        """Validate a loaded YouTube-VIS JSON object; `source` names it in errors."""
        obj = top_object(obj, source, "a YouTube-VIS file")
        videos = tuple(
            _parse_video(o, f"{source}: videos[{i}]") for i, o in enumerate(obj_list(obj, "videos", source))
        )
        by_id = unique_ids(videos, f"{source}: videos")
        cats = tuple(
            CocoCategory.from_json_dict(o, f"{source}: categories[{i}]")
            for i, o in enumerate(obj_list(obj, "categories", source))
        )
        cat_ids = unique_ids(cats, f"{source}: categories")
        anns = tuple(
            _parse_annotation(o, by_id, cat_ids, f"{source}: annotations[{i}]")
            for i, o in enumerate(obj_list(obj, "annotations", source))
        )
        unique_ids(anns, f"{source}: annotations")
        return cls(videos, anns, cats, extra_fields(obj, ("videos", "annotations", "categories")))


def _parse_video(obj: dict[str, Any], where: str) -> YtvisVideo:
    names = get_field(obj, "file_names", (list,), where)
    names = tuple(typed(n, (str,), f"{where}.file_names[{t}]") for t, n in enumerate(names))
    if "length" in obj and get_field(obj, "length", (int,), where) != len(names):
        raise FormatError(f"{where}: length is {obj['length']} but file_names lists {len(names)} frames")
    return YtvisVideo(
        id=get_field(obj, "id", (int,), where),
        height=get_field(obj, "height", (int,), where),
        width=get_field(obj, "width", (int,), where),
        file_names=names,
        extra=extra_fields(obj, ("id", "height", "width", "length", "file_names")),
    )


def _per_frame(obj: dict[str, Any], key: str, length: int, where: str) -> list[Any]:
    values = get_field(obj, key, (list,), where)
    if len(values) > length:
        raise FormatError(
            f"{where}.{key}: {len(values)} entries but the video has {length} frames; "
            f"entry {length} is past the end of the video"
        )
    if len(values) < length:
        raise FormatError(
            f"{where}.{key}: {len(values)} entries for a {length}-frame video; use null for absent frames"
        )
    return values


def _parse_annotation(
    obj: dict[str, Any], videos: dict[int, YtvisVideo], cat_ids: dict[int, Any], where: str
) -> YtvisAnnotation:
    video_id = get_field(obj, "video_id", (int,), where)
    if video_id not in videos:
        raise FormatError(f"{where}.video_id: {video_id} is not the id of any video in the file")
    category_id = get_field(obj, "category_id", (int,), where)
    if category_id not in cat_ids:
        raise FormatError(f"{where}.category_id: {category_id} is not the id of any category in the file")
    video = videos[video_id]
    size = (video.height, video.width)
    segs = tuple(
        None if s is None else parse_segmentation(s, size, f"{where}.segmentations[{t}]")
        for t, s in enumerate(_per_frame(obj, "segmentations", video.length, where))
    )
    if "areas" in obj:
        areas = tuple(
            None if a is None else typed(a, NUMBER, f"{where}.areas[{t}]")
            for t, a in enumerate(_per_frame(obj, "areas", video.length, where))
        )
    else:
        areas = tuple(None if s is None else float(s.area) for s in segs)
    if "bboxes" in obj:
        boxes = tuple(
            None if b is None else bbox_field(b, f"{where}.bboxes[{t}]")
            for t, b in enumerate(_per_frame(obj, "bboxes", video.length, where))
        )
    else:
        boxes = tuple(None if s is None else s.bbox for s in segs)
    return YtvisAnnotation(
        id=get_field(obj, "id", (int,), where),
        video_id=video_id,
        category_id=category_id,
        segmentations=segs,
        areas=areas,
        bboxes=boxes,
        iscrowd=typed(obj.get("iscrowd", 0), (int,), f"{where}.iscrowd"),
        extra=extra_fields(
            obj, ("id", "video_id", "category_id", "segmentations", "areas", "bboxes", "iscrowd")
        ),
    )


def read_ytvis_json(path: str | os.PathLike[str]) -> YtvisDataset:
    """Read and validate a YouTube-VIS JSON file."""
    path = Path(path)
    return YtvisDataset.from_json_dict(read_json(path), source=str(path))


def write_ytvis_json(path: str | os.PathLike[str], dataset: YtvisDataset) -> Path:
    """Write `dataset` as YouTube-VIS JSON (temporary file, then rename)."""
    return write_json_atomic(path, dataset.to_json_dict())

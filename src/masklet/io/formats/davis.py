"""DAVIS folders: `{video}/{frame:05d}.png`, indexed palette PNGs, 0 background, 1..N objects, 255 void.

A label map holds one object per pixel, so overlapping masks are flattened on write with the
lowest object id on top (as the official SAM 2 VOS inference script writes them).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from masklet.errors import FormatError
from masklet.io._files import atomic_directory, list_numbered
from masklet.io.masks import VOID_LABEL, RleLike, RleMask, decode_rle, read_label_png, write_label_png

__all__ = [
    "DavisVideo",
    "labels_from_masks",
    "masks_from_labels",
    "read_davis_video",
    "write_davis_video",
]

MAX_OBJECT_ID = VOID_LABEL - 1


@dataclass(frozen=True, slots=True)
class DavisVideo:
    """One DAVIS sequence as RLEs: every object has an RLE on every frame (empty where absent)."""

    size: tuple[int, int]  # (H, W)
    frames: tuple[int, ...]  # frame indices that have a PNG, ascending
    masks: Mapping[int, Mapping[int, RleMask]]  # {obj_id: {frame: RLE}}
    void: Mapping[int, RleMask] = field(default_factory=dict)  # {frame: RLE of 255 pixels}, frames with any

    @property
    def obj_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.masks))

    def labels(self, frame: int) -> np.ndarray:
        """(H, W) uint8 label map of `frame`, void included."""
        labels = labels_from_masks({o: m[frame].decode() for o, m in self.masks.items()}, size=self.size)
        if frame in self.void:
            labels[self.void[frame].decode()] = VOID_LABEL
        return labels


def labels_from_masks(masks: Mapping[int, np.ndarray], *, size: tuple[int, int]) -> np.ndarray:
    """Flatten {obj_id: (H, W) mask} into a (H, W) uint8 label map; the lowest id wins overlaps."""
    labels = np.zeros(size, dtype=np.uint8)
    for obj_id in sorted(masks, reverse=True):
        if not 1 <= obj_id <= MAX_OBJECT_ID:
            raise FormatError(
                f"DAVIS object ids are 1..{MAX_OBJECT_ID} (0 is background, 255 void), got {obj_id}"
            )
        mask = np.asarray(masks[obj_id])
        if mask.shape != tuple(size):
            raise FormatError(f"object {obj_id}: mask shape {mask.shape} is not the frame size {tuple(size)}")
        labels[mask != 0] = obj_id
    return labels


def masks_from_labels(labels: np.ndarray) -> dict[int, np.ndarray]:
    """{obj_id: (H, W) bool} for every id present in a label map (0 and 255 excluded)."""
    ids = np.unique(labels)
    return {int(i): labels == i for i in ids if 0 < i < VOID_LABEL}


def read_davis_video(video_dir: str | os.PathLike[str], *, num_frames: int | None = None) -> DavisVideo:
    """Read one sequence folder; `num_frames` rejects PNGs for frames past the end of the video."""
    video_dir = Path(video_dir)
    entries = list_numbered(video_dir, suffix=".png")
    if not entries:
        raise FormatError(f"{video_dir}: no numbered PNG files (expected 00000.png, 00001.png, ...)")
    size: tuple[int, int] | None = None
    per_frame: dict[int, dict[int, RleMask]] = {}
    void: dict[int, RleMask] = {}
    for frame, png in entries:
        if num_frames is not None and frame >= num_frames:
            raise FormatError(f"{png}: frame {frame} is past the end of the {num_frames}-frame video")
        labels = read_label_png(png)
        if size is None:
            size = (int(labels.shape[0]), int(labels.shape[1]))
        elif labels.shape != size:
            raise FormatError(
                f"{png}: label map is {labels.shape[0]}x{labels.shape[1]} (HxW), the first frame is {size[0]}x{size[1]}"
            )
        per_frame[frame] = {o: RleMask.from_mask(m) for o, m in masks_from_labels(labels).items()}
        if (labels == VOID_LABEL).any():
            void[frame] = RleMask.from_mask(labels == VOID_LABEL)
    assert size is not None
    empty = RleMask.empty(*size)
    obj_ids = sorted({o for objs in per_frame.values() for o in objs})
    masks = {o: {f: per_frame[f].get(o, empty) for f, _ in entries} for o in obj_ids}
    return DavisVideo(size=size, frames=tuple(f for f, _ in entries), masks=masks, void=void)


def write_davis_video(
    video_dir: str | os.PathLike[str],
    masks: Mapping[int, Mapping[int, np.ndarray | RleLike]],
    *,
    size: tuple[int, int],
    frames: tuple[int, ...] | None = None,
    void: Mapping[int, np.ndarray | RleLike] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write {obj_id: {frame: mask or RLE}} as one palette PNG per frame; the folder appears whole or not at all.

    `frames` defaults to every frame any object (or `void`) has; a frame listed but without
    masks is written as background.
    """
    void = void or {}
    if frames is None:
        frames = tuple(sorted({int(f) for objs in masks.values() for f in objs} | {int(f) for f in void}))
    video_dir = Path(video_dir)
    with atomic_directory(video_dir, overwrite=overwrite) as tmp:
        for frame in frames:
            if frame < 0:
                raise FormatError(f"negative frame index {frame}")
            present = {o: _decoded(m[frame], size) for o, m in masks.items() if frame in m}
            labels = labels_from_masks(present, size=size)
            if frame in void:
                labels[_decoded(void[frame], size)] = VOID_LABEL
            write_label_png(tmp / f"{frame:05d}.png", labels, durable=False)
    return video_dir


def _decoded(mask: np.ndarray | RleLike, size: tuple[int, int]) -> np.ndarray:
    if isinstance(mask, np.ndarray):
        return mask != 0
    return decode_rle(mask, expected_size=size)

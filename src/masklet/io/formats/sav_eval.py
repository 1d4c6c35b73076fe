"""The SA-V val/test evaluation layout: `{root}/{video_id}/{obj:03d}/{frame:05d}.png`.

One binary PNG per object per frame (objects may overlap, so a single label map cannot
hold them). Frames are 24 fps video frame indices (00000, 00004, ... for 6 fps ground
truth). Masks come back as RLE, so a long video never sits decoded in memory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from masklet.errors import FormatError
from masklet.io._files import atomic_directory, list_numbered
from masklet.io.masks import RleLike, RleMask, decode_rle, read_binary_png, write_binary_png

__all__ = ["list_sav_eval_videos", "read_sav_eval_video", "write_sav_eval_video"]


def write_sav_eval_video(
    root: str | os.PathLike[str],
    video_id: str,
    masks: Mapping[int, Mapping[int, np.ndarray | RleLike]],
    *,
    overwrite: bool = False,
) -> Path:
    """Write {obj_id: {frame: mask or RLE}} under `root/video_id`; the folder appears whole or not at all."""
    target = Path(root) / video_id
    with atomic_directory(target, overwrite=overwrite) as tmp:
        for obj_id, frames in masks.items():
            if not 0 <= int(obj_id) <= 999:
                raise FormatError(
                    f"object id {obj_id} does not fit the 3-digit folder name of the SA-V layout"
                )
            for frame, mask in frames.items():
                if int(frame) < 0:
                    raise FormatError(f"object {obj_id}: negative frame index {frame}")
                array = mask if isinstance(mask, np.ndarray) else decode_rle(mask)
                write_binary_png(tmp / f"{int(obj_id):03d}" / f"{int(frame):05d}.png", array, durable=False)
    return target


def read_sav_eval_video(
    video_dir: str | os.PathLike[str],
    *,
    num_frames: int | None = None,
    size: tuple[int, int] | None = None,
) -> dict[int, dict[int, RleMask]]:
    """Read one video folder as {obj_id: {frame: RLE}}.

    `num_frames` (the video's length) rejects masks for frames past the end; `size`
    (H, W) rejects masks of another size. All masks of a video must share one size.
    """
    video_dir = Path(video_dir)
    out: dict[int, dict[int, RleMask]] = {}
    for obj_id, obj_dir in list_numbered(video_dir, dirs=True):
        frames: dict[int, RleMask] = {}
        for frame, png in list_numbered(obj_dir, suffix=".png"):
            if num_frames is not None and frame >= num_frames:
                raise FormatError(f"{png}: frame {frame} is past the end of the {num_frames}-frame video")
            mask = read_binary_png(png)
            if size is None:
                size = (int(mask.shape[0]), int(mask.shape[1]))
            elif mask.shape != tuple(size):
                raise FormatError(
                    f"{png}: mask is {mask.shape[0]}x{mask.shape[1]} (HxW), expected {size[0]}x{size[1]}"
                )
            frames[frame] = RleMask.from_mask(mask)
        if not frames:
            raise FormatError(f"{obj_dir}: object folder holds no PNG masks")
        out[obj_id] = frames
    return out


def list_sav_eval_videos(root: str | os.PathLike[str]) -> list[str]:
    """Video ids (sub-folder names) under an evaluation root, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise FormatError(f"{root}: not a folder")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))

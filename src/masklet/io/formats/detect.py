"""Which mask layout a folder holds, and reading it without being told.

Two folder layouts hold per-frame masks of one video: SA-V's evaluation layout (one sub-folder
per object, `{obj:03d}/{frame:05d}.png`) and DAVIS (palette PNGs, one per frame). A root of
several videos holds one such folder per video.
"""

from __future__ import annotations

import os
from pathlib import Path

from masklet.errors import MaskletError
from masklet.io.formats.davis import read_davis_video
from masklet.io.formats.sav_eval import read_sav_eval_video
from masklet.io.masks import RleMask

__all__ = ["is_sav_eval_root", "read_mask_folder"]


def read_mask_folder(video_dir: str | os.PathLike[str]) -> dict[int, dict[int, RleMask]]:
    """{obj_id: {frame: RLE}} from one video's SA-V evaluation folder or DAVIS folder."""
    video_dir = Path(video_dir)
    if not video_dir.is_dir():
        raise MaskletError(f"{video_dir}: not a folder of masks (SA-V evaluation or DAVIS layout)")
    if any(p.is_dir() for p in video_dir.iterdir()):
        return read_sav_eval_video(video_dir)
    seq = read_davis_video(video_dir)
    return {obj: dict(frames) for obj, frames in seq.masks.items()}


def is_sav_eval_root(root: str | os.PathLike[str]) -> bool:
    """True when a root of video folders is in SA-V's evaluation layout (objects as sub-folders)."""
    return any(sub.is_dir() for v in Path(root).iterdir() if v.is_dir() for sub in v.iterdir())

"""Annotation file formats: SA-V JSON and evaluation layout, DAVIS folders, COCO and YouTube-VIS JSON."""

from masklet.io.formats.coco import (
    CocoAnnotation,
    CocoCategory,
    CocoDataset,
    CocoImage,
    read_coco_json,
    write_coco_json,
)
from masklet.io.formats.davis import DavisVideo, read_davis_video, write_davis_video
from masklet.io.formats.detect import is_sav_eval_root, read_mask_folder
from masklet.io.formats.sav import (
    SAV_FRAME_STRIDE,
    MaskletStats,
    SavMasklet,
    SavVideoAnnotation,
    masklet_stats,
    read_sav_json,
    write_sav_json,
)
from masklet.io.formats.sav_eval import list_sav_eval_videos, read_sav_eval_video, write_sav_eval_video
from masklet.io.formats.ytvis import (
    YtvisAnnotation,
    YtvisDataset,
    YtvisVideo,
    read_ytvis_json,
    write_ytvis_json,
)

__all__ = [
    "SAV_FRAME_STRIDE",
    "CocoAnnotation",
    "CocoCategory",
    "CocoDataset",
    "CocoImage",
    "DavisVideo",
    "MaskletStats",
    "SavMasklet",
    "SavVideoAnnotation",
    "YtvisAnnotation",
    "YtvisDataset",
    "YtvisVideo",
    "is_sav_eval_root",
    "list_sav_eval_videos",
    "masklet_stats",
    "read_coco_json",
    "read_davis_video",
    "read_mask_folder",
    "read_sav_eval_video",
    "read_sav_json",
    "read_ytvis_json",
    "write_coco_json",
    "write_davis_video",
    "write_sav_eval_video",
    "write_sav_json",
    "write_ytvis_json",
]

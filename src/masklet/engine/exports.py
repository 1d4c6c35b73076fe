"""Exports of a project's videos: SA-V JSON, the SA-V evaluation layout, DAVIS folders, COCO and YouTube-VIS JSON.

Files and folders are written atomically by `masklet.io.formats`. `status` picks masklets
(e.g. "accepted"); None exports all. SA-V: masks at every 4th frame; a masklet empty on every
annotated frame is left out (SA-V masklets are visible at least once). The video-level fields
of an imported SA-V file are written back from the video's meta ("sav"). A masklet field read
from one (kept in the masklet's meta) is written back as read while it still agrees with the
masks; otherwise it is derived from them (`masklet_stats`). `edited_frame_count` is the
imported count plus the annotated frames edited since (mask version > 1 from a `manual` or
`click_model` source), or, for masklets made here, the annotated frames with such a source.
DAVIS labels are the object ids when they all lie in 1..254, else 1, 2, ... in object-id order.
COCO: one image per frame with a saved mask (`frame_index` in the image, `obj_id` in each
annotation), so `import_annotations(..., format="coco")` reads it back into the same masklets.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from masklet.engine.effort import EDIT_SOURCES
from masklet.engine.projects import video_name
from masklet.engine.store import FrameMask, Masklet, Store, Video
from masklet.errors import MaskletError
from masklet.io.formats import (
    CocoAnnotation,
    CocoCategory,
    CocoDataset,
    CocoImage,
    SavMasklet,
    SavVideoAnnotation,
    YtvisAnnotation,
    YtvisDataset,
    YtvisVideo,
    masklet_stats,
    write_coco_json,
    write_davis_video,
    write_sav_eval_video,
    write_sav_json,
    write_ytvis_json,
)
from masklet.io.formats.davis import MAX_OBJECT_ID
from masklet.io.formats.sav import SAV_FRAME_STRIDE
from masklet.io.masks import RleMask

log = logging.getLogger(__name__)

__all__ = [
    "EXPORT_FORMATS",
    "coco_dataset",
    "export_coco",
    "export_davis",
    "export_project",
    "export_sav",
    "export_sav_eval",
    "export_ytvis",
    "sav_annotation",
    "ytvis_dataset",
]

EXPORT_FORMATS = ("sav", "sav-eval", "davis", "coco", "ytvis")
DEFAULT_CATEGORY = "object"


def _rle(mask: FrameMask) -> RleMask:
    return RleMask(mask.size, mask.counts)


def _tracks(
    store: Store, video_id: int, *, status: str | None, type: str | None = None
) -> list[tuple[Masklet, dict[int, FrameMask]]]:
    """Each masklet with its saved masks by frame, in masklet order."""
    masklets = store.list_masklets(video_id=video_id, status=status, type=type)
    return [(m, {fm.frame: fm for fm in store.get_frame_masks(m.id)}) for m in masklets]


# ------------------------------------------------------------------------------------------------ SA-V
def _same(read: Any, derived: Any) -> bool:
    if isinstance(read, bool) or read is None:
        return False
    if isinstance(read, (int, float)) and isinstance(derived, (int, float)):
        return math.isclose(read, derived, rel_tol=1e-8, abs_tol=1e-9)  # the release rounds to 10 decimals
    return bool(read == derived)


def _sav_video_fields(video: Video) -> dict[str, Any]:
    """The SA-V video fields an import kept in the video's meta, else ones derived from the video."""
    if isinstance(sav := video.meta.get("sav"), Mapping):
        return dict(sav)
    return {
        "video_id": Path(video.path).stem,
        "video_duration": video.frame_count / video.fps,
        "video_frame_count": float(video.frame_count),
        "video_height": float(video.height),
        "video_width": float(video.width),
        "video_resolution": float(video.height * video.width),
        "video_environment": "",
        "video_split": "train",
        "num_annotated_frames": math.ceil(video.frame_count / SAV_FRAME_STRIDE),
        "extra": {},
    }


def _sav_masklet(
    m: Masklet, saved: dict[int, FrameMask], frames: list[int], empty: RleMask
) -> SavMasklet | None:
    rles = tuple(_rle(saved[f]) if f in saved else empty for f in frames)
    areas = [r.area for r in rles]
    if not any(areas):
        log.warning("masklet %d is empty on every annotated frame; left out of the SA-V file", m.id)
        return None
    stats = masklet_stats(areas, resolution=empty.size[0] * empty.size[1])
    read: Mapping[str, Any] = m.meta.get("sav") or {}

    def keep(name: str, derived: Any) -> Any:
        return read[name] if _same(read.get(name), derived) else derived

    edited = [
        f
        for f in frames
        if f in saved and saved[f].source in EDIT_SOURCES and (saved[f].version > 1 or not read)
    ]
    scores = read.get("stability_score")
    return SavMasklet(
        masklet_id=read.get("masklet_id", m.obj_id),
        rles=rles,
        size_rel=keep("size_rel", stats.size_rel),
        size_abs=keep("size_abs", stats.size_abs),
        size_bucket=keep("size_bucket", stats.size_bucket),
        visibility_changes=keep("visibility_changes", stats.visibility_changes),
        first_appeared_frame=keep("first_appeared_frame", stats.first_appeared_frame),
        frame_count=keep("frame_count", stats.frame_count),
        edited_frame_count=int(read.get("edited_frame_count", 0)) + len(edited),
        masklet_type=m.type,
        stability_score=tuple(scores) if scores is not None and len(scores) == len(frames) else None,
    )


def sav_annotation(
    store: Store, video_id: int, *, masklet_type: str = "manual", status: str | None = None
) -> SavVideoAnnotation:
    """The SA-V file of one video's masklets of one type ("manual" or "auto")."""
    video = store.get_video(video_id)
    info = _sav_video_fields(video)
    frames = [SAV_FRAME_STRIDE * t for t in range(int(info["num_annotated_frames"]))]
    empty = RleMask.empty(video.height, video.width)
    built = [
        _sav_masklet(m, saved, frames, empty)
        for m, saved in _tracks(store, video_id, status=status, type=masklet_type)
    ]
    fields = {k: v for k, v in info.items() if k not in ("extra", "num_annotated_frames")}
    return SavVideoAnnotation(
        **fields,
        num_annotated_frames=len(frames),
        masklets=tuple(b for b in built if b is not None),
        extra=dict(info.get("extra") or {}),
    )


def export_sav(
    store: Store,
    video_id: int,
    path: str | os.PathLike[str],
    *,
    masklet_type: str = "manual",
    status: str | None = None,
) -> Path:
    return write_sav_json(path, sav_annotation(store, video_id, masklet_type=masklet_type, status=status))


def export_sav_eval(
    store: Store,
    video_id: int,
    root: str | os.PathLike[str],
    *,
    status: str | None = None,
    overwrite: bool = False,
    name: str | None = None,
) -> Path:
    """`root/{name}/{obj:03d}/{frame:05d}.png`, one binary PNG per saved mask; `name` defaults to `video_name`."""
    video = store.get_video(video_id)
    masks = {
        m.obj_id: {f: _rle(fm) for f, fm in saved.items()}
        for m, saved in _tracks(store, video_id, status=status)
    }
    return write_sav_eval_video(root, name or video_name(video), masks, overwrite=overwrite)


# ---------------------------------------------------------------------------------------------- DAVIS
def export_davis(
    store: Store,
    video_id: int,
    folder: str | os.PathLike[str],
    *,
    status: str | None = None,
    overwrite: bool = False,
) -> Path:
    """One palette PNG per frame with a saved mask (see the module docstring for the labels)."""
    video = store.get_video(video_id)
    tracks = _tracks(store, video_id, status=status)
    obj_ids = sorted(m.obj_id for m, _ in tracks)
    in_range = all(1 <= o <= MAX_OBJECT_ID for o in obj_ids)
    if not in_range and len(obj_ids) > MAX_OBJECT_ID:
        raise MaskletError(
            f"video {video_id} has {len(obj_ids)} objects; a DAVIS label map holds {MAX_OBJECT_ID}"
        )
    label = {o: o if in_range else i + 1 for i, o in enumerate(obj_ids)}
    masks = {label[m.obj_id]: {f: _rle(fm) for f, fm in saved.items()} for m, saved in tracks}
    return write_davis_video(folder, masks, size=(video.height, video.width), overwrite=overwrite)


# ---------------------------------------------------------------------------------------- COCO, YTVIS
def _categories(masklets: list[Masklet]) -> dict[str, int]:
    names = sorted({m.category or DEFAULT_CATEGORY for m in masklets})
    return {name: i + 1 for i, name in enumerate(names)}


def coco_dataset(store: Store, video_id: int, *, status: str | None = None) -> CocoDataset:
    """One video as COCO: an image per frame with a saved mask, an annotation per non-empty mask."""
    video = store.get_video(video_id)
    name, tracks = video_name(video), _tracks(store, video_id, status=status)
    categories = _categories([m for m, _ in tracks])
    frames = sorted({f for _, saved in tracks for f in saved})
    images = tuple(
        CocoImage(f + 1, f"{name}/{f:05d}.jpg", video.height, video.width, {"frame_index": f}) for f in frames
    )
    annotations = []
    for m, saved in tracks:
        for f, fm in sorted(saved.items()):
            rle = _rle(fm)
            if rle.is_empty:
                continue
            annotations.append(
                CocoAnnotation.from_mask(
                    rle,
                    id=len(annotations) + 1,
                    image_id=f + 1,
                    category_id=categories[m.category or DEFAULT_CATEGORY],
                    extra={"obj_id": m.obj_id},
                )  # fmt: skip
            )
    cats = tuple(CocoCategory(i, n) for n, i in categories.items())
    return CocoDataset(images, tuple(annotations), cats)


def export_coco(
    store: Store, video_id: int, path: str | os.PathLike[str], *, status: str | None = None
) -> Path:
    return write_coco_json(path, coco_dataset(store, video_id, status=status))


def ytvis_dataset(store: Store, video_ids: list[int], *, status: str | None = None) -> YtvisDataset:
    """Videos as YouTube-VIS: one track per masklet, a segmentation (or null) per frame."""
    per_video = [(store.get_video(v), _tracks(store, v, status=status)) for v in video_ids]
    categories = _categories([m for _, tracks in per_video for m, _ in tracks])
    videos, annotations = [], []
    for video, tracks in per_video:
        name = video_name(video)
        names = tuple(f"{name}/{t:05d}.jpg" for t in range(video.frame_count))
        videos.append(YtvisVideo(video.id, video.height, video.width, names))
        for m, saved in tracks:
            masks = [_rle(saved[t]) if t in saved else None for t in range(video.frame_count)]
            annotations.append(
                YtvisAnnotation.from_masks(
                    masks,
                    id=len(annotations) + 1,
                    video_id=video.id,
                    category_id=categories[m.category or DEFAULT_CATEGORY],
                    extra={"obj_id": m.obj_id},
                )  # fmt: skip
            )
    cats = tuple(CocoCategory(i, n) for n, i in categories.items())
    return YtvisDataset(tuple(videos), tuple(annotations), cats)


def export_ytvis(
    store: Store, video_ids: list[int], path: str | os.PathLike[str], *, status: str | None = None
) -> Path:
    return write_ytvis_json(path, ytvis_dataset(store, video_ids, status=status))


# ------------------------------------------------------------------------------------------- projects
def export_project(
    store: Store,
    project_id: int,
    format: str,
    out: str | os.PathLike[str],
    *,
    status: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Export every video of a project; returns the files or folders written.

    `out` is a file for "ytvis", and for "sav"/"coco" when the project has one video (and, for
    "sav", one masklet type) and `out` ends in .json; otherwise a folder that receives
    `{video}_{manual|auto}.json` (sav), `{video}.json` (coco) or `{video}/` (sav-eval, davis).
    """
    if format not in EXPORT_FORMATS:
        raise MaskletError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {format!r}")
    videos = store.list_videos(project_id)
    if not videos:
        raise MaskletError(f"project {project_id} has no videos to export; add or import one first")
    out = Path(out)
    if format == "ytvis":  # one file for all videos: OUT.json, or OUT/ytvis.json given a folder
        target = out if out.suffix == ".json" else out / "ytvis.json"
        return [export_ytvis(store, [v.id for v in videos], target, status=status)]
    one_file = out.suffix == ".json"
    if one_file and (len(videos) > 1 or format not in ("sav", "coco")):
        raise MaskletError(
            f"{out}: {format} export of {len(videos)} video(s) goes to a folder, not a .json file"
        )
    written, used = [], set()
    for video in videos:
        name = video_name(video)
        name = name if name not in used else f"{name}_{video.id}"  # two videos of one name: keep both
        used.add(name)
        if format == "coco":
            written.append(
                export_coco(store, video.id, out if one_file else out / f"{name}.json", status=status)
            )
        elif format == "sav":
            types = sorted({m.type for m in store.list_masklets(video_id=video.id, status=status)}) or [
                "manual"
            ]
            if one_file and len(types) > 1:
                raise MaskletError(f"{out}: video {name} has manual and auto masklets; export to a folder")
            for t in types:
                target = out if one_file else out / f"{name}_{t}.json"
                written.append(export_sav(store, video.id, target, masklet_type=t, status=status))
        elif format == "sav-eval":
            written.append(
                export_sav_eval(store, video.id, out, status=status, overwrite=overwrite, name=name)
            )
        else:
            written.append(export_davis(store, video.id, out / name, status=status, overwrite=overwrite))
    return written

"""Project workflows: add a video (probed and hashed), import annotation files into masklets.

Each import is one store transaction: a malformed file (or one that does not fit the video)
saves nothing. Files are read and validated by `masklet.io.formats` before the store is
touched. The video an import lands on is `video_id` if given, else the project's video whose
file name stem equals the annotation's video name (SA-V `video_id`, the DAVIS folder name, the
folder of the COCO `file_name`s or the file stem, the YouTube-VIS `file_names` folder), else a new video row for that name (content
hash `annotation-sha256:<hash of the annotation file>`, since the video file itself is absent).
Object ids are kept when free on that video; if any is taken (an SA-V auto file after the
manual one) all of the file's objects get fresh ids after the highest one, and the file's
id stays in the masklet's meta (`source_id`). An SA-V file's video-level fields (duration,
environment, split, extras, number of annotated frames, ...) go into the video's meta under
"sav", for export; a later SA-V import of the video replaces them. Each import logs an
`import.<format>` event with the file and what it saved.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from masklet.engine.store import Masklet, Store, Video
from masklet.engine.vocabulary import EventAction
from masklet.errors import FormatError, MaskletError
from masklet.io.formats import read_coco_json, read_davis_video, read_sav_json, read_ytvis_json
from masklet.io.formats.sav import SAV_FPS
from masklet.io.frames import ImageFolderSource, open_frame_source
from masklet.io.masks import RleMask

log = logging.getLogger(__name__)

__all__ = ["FORMATS", "ImportResult", "add_video", "content_hash", "import_annotations", "video_name"]

FORMATS = ("sav", "davis", "coco", "ytvis")
DEFAULT_FPS = 24.0  # SA-V and DAVIS videos; used for imported annotations without a video file
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What one import saved."""

    video: Video
    masklets: tuple[Masklet, ...]
    masks: int  # frame masks saved


# ------------------------------------------------------------------------------------------ videos
def _hash_files(paths: Iterable[Path], digest: Any) -> None:
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)


def content_hash(path: str | os.PathLike[str]) -> str:
    """sha256 of a video file, or of a frame folder's files (names and bytes, in frame order)."""
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        with ImageFolderSource(path) as source:
            for frame_path in source.paths:
                digest.update(frame_path.name.encode() + b"\0")
                _hash_files([frame_path], digest)
    else:
        _hash_files([path], digest)
    return digest.hexdigest()


def add_video(
    store: Store,
    project_id: int,
    path: str | os.PathLike[str],
    *,
    by: str = "system",
    fps: float | None = None,
) -> Video:
    """Probe a video file or frame folder (size, frame count, fps) and register it in a project.

    `fps` is needed for frame folders, which carry none; for files it overrides the container's.
    """
    with open_frame_source(path, fps=fps) as source:
        rate = fps if fps is not None else source.fps
        if rate is None or not rate > 0:
            raise MaskletError(f"{path}: the frame rate is unknown (a frame folder?); give it with fps=...")
        num_frames = source.num_frames
        assert num_frames is not None  # files and folders have a length
        return store.add_video(
            project_id, str(Path(path).resolve()), fps=float(rate), width=source.width, height=source.height,
            frame_count=num_frames, content_hash=content_hash(path), by=by,
        )  # fmt: skip


def video_name(video: Video) -> str:
    """The video's name in exports: the SA-V `video_id` it was imported with, else its file stem."""
    sav = video.meta.get("sav")
    if isinstance(sav, Mapping) and isinstance(sav.get("video_id"), str):
        return sav["video_id"]
    return Path(video.path).stem


def _target_video(
    store: Store,
    project_id: int,
    *,
    video_id: int | None,
    name: str,
    size: tuple[int, int],
    frame_count: int,
    fps: float,
    source: Path,
    by: str,
) -> Video:
    """The video an import lands on (see the module docstring); checks that the masks fit it."""
    if video_id is not None:
        video = store.get_video(video_id)
        if video.project_id != project_id:
            raise MaskletError(f"video {video_id} belongs to project {video.project_id}, not {project_id}")
    else:
        same = [v for v in store.list_videos(project_id) if Path(v.path).stem == name]
        if same:
            video = same[0]
        else:
            tag = "annotation-sha256:" + content_hash(source)
            path = f"{name}.mp4" if source.suffix == ".json" else name
            return store.add_video(
                project_id, path, fps=fps, width=size[1], height=size[0], frame_count=frame_count,
                content_hash=tag, by=by,
            )  # fmt: skip
    if (video.height, video.width) != size:
        raise FormatError(
            f"{source}: masks are {size[0]}x{size[1]} (h x w) but video {video.id} ({video.path}) is "
            f"{video.height}x{video.width}; import into the matching video (video_id=...)"
        )
    if frame_count > video.frame_count:
        raise FormatError(
            f"{source}: masks reach frame {frame_count - 1}, past the end of video {video.id}, which has "
            f"{video.frame_count} frames"
        )
    return video


def _object_ids(store: Store, video: Video, wanted: list[int]) -> list[int]:
    existing = {m.obj_id for m in store.list_masklets(video_id=video.id)}
    if not existing & set(wanted):
        return wanted
    start = max(existing) + 1
    log.info("object ids %s are taken on video %d; importing them as %d..", wanted, video.id, start)
    return [start + i for i in range(len(wanted))]


def _save(
    store: Store,
    video: Video,
    objects: list[tuple[int, str | None, str, dict[str, Any], Mapping[int, RleMask]]],
    *,
    source: str,
    by: str,
) -> tuple[tuple[Masklet, ...], int]:
    """Create one masklet per (file id, category, type, meta, {frame: RLE}) and save its masks."""
    ids = _object_ids(store, video, [o[0] for o in objects])
    saved, count = [], 0
    for obj_id, (file_id, category, kind, meta, masks) in zip(ids, objects, strict=True):
        meta = {**meta, "source_id": file_id} if obj_id != file_id else meta
        masklet = store.create_masklet(
            video.id, by=by, obj_id=obj_id, category=category, type=kind, meta=meta
        )
        rles = {f: r.to_dict() for f, r in masks.items()}
        count += len(store.put_frame_masks(masklet.id, rles, source=source, by=by))
        saved.append(masklet)
    return tuple(saved), count


# ----------------------------------------------------------------------------------------- imports
_SAV_MASKLET_FIELDS = (
    "masklet_id", "size_rel", "size_abs", "size_bucket", "visibility_changes",
    "first_appeared_frame", "frame_count", "edited_frame_count", "masklet_type",
)  # fmt: skip
_SAV_VIDEO_FIELDS = (
    "video_id", "video_duration", "video_frame_count", "video_height", "video_width",
    "video_resolution", "video_environment", "video_split", "num_annotated_frames",
)  # fmt: skip


def _import_sav(
    store: Store, project_id: int, path: Path, *, by: str, video_id: int | None
) -> list[ImportResult]:
    ann = read_sav_json(path)
    fps = ann.video_frame_count / ann.video_duration if ann.video_duration > 0 else SAV_FPS
    video = _target_video(
        store, project_id, video_id=video_id, name=ann.video_id, size=ann.size,
        frame_count=int(ann.video_frame_count), fps=fps, source=path, by=by,
    )  # fmt: skip
    objects = []
    for m in ann.masklets:
        if m.masklet_type not in ("manual", "auto"):
            raise FormatError(
                f"{path}: masklet {m.masklet_id} has masklet_type {m.masklet_type!r}, not manual/auto"
            )
        sav: dict[str, Any] = {k: getattr(m, k) for k in _SAV_MASKLET_FIELDS}
        if m.stability_score is not None:
            sav["stability_score"] = list(m.stability_score)
        masks = dict(zip(ann.annotated_frames, m.rles, strict=True))
        objects.append((m.masklet_id, None, m.masklet_type, {"sav": sav}, masks))
    source = "auto" if all(o[2] == "auto" for o in objects) and objects else "manual"
    masklets, count = _save(store, video, objects, source=source, by=by)
    fields = {k: getattr(ann, k) for k in _SAV_VIDEO_FIELDS}
    fields["extra"] = dict(ann.extra)
    video = store.set_video_meta(video.id, {"sav": fields}, by=by, merge=True)
    payload = {"file": str(path), "masklets": len(masklets), "masks": count}
    store.log_event(EventAction.IMPORT_SAV, by=by, video_id=video.id, payload=payload)
    return [ImportResult(video, masklets, count)]


def _import_davis(
    store: Store, project_id: int, path: Path, *, by: str, video_id: int | None, fps: float
) -> list[ImportResult]:
    limit = store.get_video(video_id).frame_count if video_id is not None else None
    seq = read_davis_video(path, num_frames=limit)
    video = _target_video(
        store, project_id, video_id=video_id, name=path.name, size=seq.size,
        frame_count=max(seq.frames) + 1, fps=fps, source=path, by=by,
    )  # fmt: skip
    if seq.void:
        log.warning("%s: void (255) pixels on %d frames are not imported", path, len(seq.void))
    objects = [(o, None, "manual", {}, seq.masks[o]) for o in seq.obj_ids]
    masklets, count = _save(store, video, objects, source="manual", by=by)
    store.log_event(
        EventAction.IMPORT_DAVIS, by=by, video_id=video.id, payload={"file": str(path), "masks": count}
    )
    return [ImportResult(video, masklets, count)]


def _import_coco(
    store: Store, project_id: int, path: Path, *, by: str, video_id: int | None, fps: float
) -> list[ImportResult]:
    data = read_coco_json(path)
    images = sorted(data.images, key=lambda i: i.id)
    sizes = {(i.height, i.width) for i in images}
    if len(sizes) != 1:
        raise FormatError(f"{path}: the images of one video share one size, got {sorted(sizes)}")
    frame_of = {}
    for position, image in enumerate(images):
        frame = image.extra.get("frame_index", position)
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise FormatError(f"{path}: image {image.id} has frame_index {frame!r}; expected an integer >= 0")
        frame_of[image.id] = frame
    categories = {c.id: c.name for c in data.categories}
    tracks: dict[int, tuple[str, dict[int, RleMask]]] = {}
    for a in data.annotations:
        obj_id = a.extra.get("obj_id", a.id)
        if isinstance(obj_id, bool) or not isinstance(obj_id, int) or obj_id < 0:
            raise FormatError(f"{path}: annotation {a.id} has obj_id {obj_id!r}; expected an integer >= 0")
        name, frames = tracks.setdefault(obj_id, (categories[a.category_id], {}))
        frame = frame_of[a.image_id]
        if frame in frames or name != categories[a.category_id]:
            raise FormatError(
                f"{path}: object {obj_id} has two annotations on frame {frame} or two categories"
            )
        frames[frame] = a.rle
    folders = {Path(i.file_name).parent.name for i in images}
    name = folders.pop() if len(folders) == 1 and "" not in folders else path.stem
    video = _target_video(
        store, project_id, video_id=video_id, name=name, size=sizes.pop(),
        frame_count=max(frame_of.values(), default=0) + 1, fps=fps, source=path, by=by,
    )  # fmt: skip
    objects = [(o, name, "manual", {}, frames) for o, (name, frames) in sorted(tracks.items())]
    masklets, count = _save(store, video, objects, source="manual", by=by)
    store.log_event(
        EventAction.IMPORT_COCO, by=by, video_id=video.id, payload={"file": str(path), "masks": count}
    )
    return [ImportResult(video, masklets, count)]


def _import_ytvis(
    store: Store, project_id: int, path: Path, *, by: str, video_id: int | None, fps: float
) -> list[ImportResult]:
    data = read_ytvis_json(path)
    if video_id is not None and len(data.videos) != 1:
        raise MaskletError(f"{path} holds {len(data.videos)} videos; video_id= fits a one-video file only")
    categories = {c.id: c.name for c in data.categories}
    results = []
    for v in data.videos:
        folder = Path(v.file_names[0]).parent.name if v.file_names else ""
        video = _target_video(
            store, project_id, video_id=video_id, name=folder or f"{path.stem}_{v.id}", size=(v.height, v.width),
            frame_count=v.length, fps=fps, source=path, by=by,
        )  # fmt: skip
        objects = []
        for a in (a for a in data.annotations if a.video_id == v.id):
            obj_id = a.extra.get("obj_id", a.id)
            if isinstance(obj_id, bool) or not isinstance(obj_id, int) or obj_id < 0:
                raise FormatError(
                    f"{path}: annotation {a.id} has obj_id {obj_id!r}; expected an integer >= 0"
                )
            masks = {t: s for t, s in enumerate(a.segmentations) if s is not None}
            objects.append((obj_id, categories[a.category_id], "manual", {}, masks))
        masklets, count = _save(store, video, objects, source="manual", by=by)
        store.log_event(
            EventAction.IMPORT_YTVIS, by=by, video_id=video.id, payload={"file": str(path), "masks": count}
        )
        results.append(ImportResult(video, masklets, count))
    return results


def import_annotations(
    store: Store,
    project_id: int,
    path: str | os.PathLike[str],
    *,
    format: str,
    by: str = "system",
    video_id: int | None = None,
    fps: float = DEFAULT_FPS,
) -> list[ImportResult]:
    """Import an SA-V JSON file, a DAVIS sequence folder, or a COCO / YouTube-VIS JSON file.

    One transaction: on any error nothing is saved. `fps` is the rate of a video row created
    for annotations without a video (SA-V files carry their own). One result per video.
    """
    if format not in FORMATS:
        raise MaskletError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    path = Path(path)
    store.get_project(project_id)  # NotFoundError before any file work
    with store.transaction():
        if format == "sav":
            return _import_sav(store, project_id, path, by=by, video_id=video_id)
        if format == "davis":
            return _import_davis(store, project_id, path, by=by, video_id=video_id, fps=fps)
        if format == "coco":
            return _import_coco(store, project_id, path, by=by, video_id=video_id, fps=fps)
        return _import_ytvis(store, project_id, path, by=by, video_id=video_id, fps=fps)

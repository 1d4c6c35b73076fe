"""Training videos and clips: what fine-tuning reads, from SA-V folders, DAVIS folders or a project.

An `AnnotatedVideo` is a frame source (a video file or a frame folder) and, for some of
its frames, one RLE mask per object. `sample_clip` draws a clip from it: `num_frames`
consecutive annotated frames (SA-V annotates every 4th video frame, so a clip of 8 spans
32 video frames, as in SAM 2's training) and up to `max_objects` objects visible on the
clip's first frame. Every draw is a function of the generator passed in, so two runs
with the same seed see the same clips in the same order.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from masklet.engine.exports import sav_annotation
from masklet.engine.service import find_project
from masklet.engine.store import Store
from masklet.engine.uploads import VIDEO_SUFFIXES
from masklet.errors import MaskletError, NotFoundError
from masklet.io.formats.davis import read_davis_video
from masklet.io.formats.sav import read_sav_json
from masklet.io.frames import open_frame_source
from masklet.io.masks import RleMask


class TrainingDataError(MaskletError):
    """Training data that cannot be used: missing, malformed, or too short for a clip."""


@dataclass(frozen=True, slots=True)
class AnnotatedVideo:
    """A video and its ground truth on some frames."""

    name: str
    source: Path  # a video file or a frame folder
    frames: tuple[int, ...]  # video frame index of each annotated frame, ascending
    masks: Mapping[int, tuple[RleMask, ...]]  # {obj_id: one RLE per annotated frame}

    @property
    def obj_ids(self) -> tuple[int, ...]:
        return tuple(sorted(self.masks))


@dataclass(frozen=True, slots=True)
class Clip:
    """A few consecutive annotated frames of one video and the masks of the chosen objects."""

    video: str
    frames: tuple[int, ...]  # video frame indices
    images: np.ndarray  # (T, H, W, 3) uint8 RGB
    masks: np.ndarray  # (N, T, H, W) bool
    obj_ids: tuple[int, ...]  # (N,)

    @property
    def num_frames(self) -> int:
        return self.images.shape[0]

    @property
    def num_objects(self) -> int:
        return self.masks.shape[0]


def _video_beside(json_path: Path, suffix: str) -> Path:
    stem = json_path.name[: -len(suffix)]
    for ext in VIDEO_SUFFIXES:
        candidate = json_path.with_name(stem + ext)
        if candidate.exists():
            return candidate
    folder = json_path.with_name(stem)
    if folder.is_dir():
        return folder
    raise TrainingDataError(
        f"{json_path}: no video beside it (looked for {stem}{{{','.join(VIDEO_SUFFIXES)}}} or a folder {stem}/)"
    )


def videos_from_sav_folder(folder: str | os.PathLike[str]) -> list[AnnotatedVideo]:
    """Every `NAME_manual.json` under `folder` (SA-V's layout) with the video `NAME.mp4` beside it.

    The masks are on every 4th video frame (SA-V annotates at 6 of 24 fps).
    """
    folder = Path(folder)
    files = sorted(folder.rglob("*_manual.json"))
    if not files:
        raise TrainingDataError(f"{folder}: no SA-V annotation files (*_manual.json) found")
    videos = []
    for path in files:
        ann = read_sav_json(path)
        source = _video_beside(path, "_manual.json")
        masks = {m.masklet_id: tuple(m.rles) for m in ann.masklets}
        videos.append(AnnotatedVideo(path.name[: -len("_manual.json")], source, ann.annotated_frames, masks))
    return videos


def videos_from_davis_folder(root: str | os.PathLike[str], *, resolution: str = "480p") -> list[AnnotatedVideo]:
    """DAVIS's layout: `JPEGImages/480p/NAME/*.jpg` and `Annotations/480p/NAME/*.png` palette maps."""
    root = Path(root)
    ann_root, img_root = root / "Annotations" / resolution, root / "JPEGImages" / resolution
    if not ann_root.is_dir() or not img_root.is_dir():
        raise TrainingDataError(f"{root}: not a DAVIS folder (needs Annotations/{resolution} and JPEGImages/{resolution})")
    videos = []
    for seq in sorted(p for p in ann_root.iterdir() if p.is_dir()):
        davis = read_davis_video(seq)
        masks = {o: tuple(davis.masks[o][f] for f in davis.frames) for o in davis.obj_ids}
        videos.append(AnnotatedVideo(seq.name, img_root / seq.name, davis.frames, masks))
    if not videos:
        raise TrainingDataError(f"{ann_root}: no sequence folders")
    return videos


def videos_from_project(store: Store, project_id: int, *, status: str = "accepted") -> list[AnnotatedVideo]:
    """A project's masklets of one status (accepted by default), on the frames SA-V annotates."""
    videos = []
    for video in store.list_videos(project_id):
        ann = sav_annotation(store, video.id, masklet_type="manual", status=status)
        if ann.masklets:
            masks = {m.masklet_id: tuple(m.rles) for m in ann.masklets}
            videos.append(AnnotatedVideo(Path(video.path).stem, Path(video.path), ann.annotated_frames, masks))
    if not videos:
        raise TrainingDataError(f"project {project_id} has no {status} masklets to train on")
    return videos


def sample_clip(
    video: AnnotatedVideo, rng: np.random.Generator, *, num_frames: int, max_objects: int
) -> Clip:
    """`num_frames` consecutive annotated frames from a random start, and up to `max_objects`
    objects visible on the first of them (a random choice when more are)."""
    if len(video.frames) < num_frames:
        raise TrainingDataError(
            f"video {video.name}: {len(video.frames)} annotated frames, fewer than a clip of {num_frames}"
        )
    starts = list(range(len(video.frames) - num_frames + 1))
    order = rng.permutation(len(starts))
    for k in order:  # the first start (in random order) where some object is visible
        start = starts[k]
        visible = [o for o in video.obj_ids if not video.masks[o][start].is_empty]
        if visible:
            break
    else:
        raise TrainingDataError(f"video {video.name}: no object is visible on any clip's first frame")
    if len(visible) > max_objects:
        visible = sorted(rng.choice(visible, size=max_objects, replace=False).tolist())
    span = range(start, start + num_frames)
    frames = tuple(video.frames[t] for t in span)
    with open_frame_source(video.source) as source:
        images = np.stack([source[f] for f in frames])
    masks = np.stack([np.stack([video.masks[o][t].decode() for t in span]) for o in visible])
    if masks.shape[-2:] != images.shape[1:3]:
        raise TrainingDataError(
            f"video {video.name}: masks are {masks.shape[-2]}x{masks.shape[-1]} but frames "
            f"{images.shape[1]}x{images.shape[2]} (h x w)"
        )
    return Clip(video.name, frames, images, masks, tuple(int(o) for o in visible))


def load_training_videos(data: str | os.PathLike[str], *, database_url: str | None = None) -> list[AnnotatedVideo]:
    """What `masklet train --data` names: a DAVIS folder, an SA-V folder, or else a project
    (name or id) of the database at `database_url`, whose accepted masklets are used."""
    path = Path(data)
    if path.is_dir():
        if (path / "Annotations").is_dir() and (path / "JPEGImages").is_dir():
            return videos_from_davis_folder(path)
        return videos_from_sav_folder(path)
    if database_url is None:
        raise TrainingDataError(f"{data}: no such folder (and no database given to look for a project of that name)")
    with Store(database_url) as store:
        try:
            project = find_project(store, str(data))
        except NotFoundError:
            raise TrainingDataError(
                f"{data}: neither a folder nor a project in {database_url}; give an SA-V or DAVIS folder or a project"
            ) from None
        return videos_from_project(store, project.id)

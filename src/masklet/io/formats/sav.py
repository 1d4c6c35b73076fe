"""SA-V training annotations (`{video_id}_manual.json`, `{video_id}_auto.json`): read, write, build.

Layout of the release files: masks every `SAV_FRAME_STRIDE` = 4th frame of the 24 fps video
(6 fps); `masklet[t][n]` is the COCO RLE of object n on annotated frame t (frame 4·t of the
video), an all-background RLE where the object is not visible. Per-masklet fields are lists
over n. `masklet_stability_score` is a (T, N) list of lists for auto files and N nulls for
manual ones. Values keep the JSON type they were read with (the manual file writes
`masklet_first_appeared_frame` as 113.0 and rounds sizes to 10 decimals; the auto file
writes ints and full floats), so read → write reproduces a file byte for byte.

Derived fields, as in the release (checked against both example files, see `masklet_stats`):
visible = area > 0 on an annotated frame; `size_abs` = mean area over visible frames;
`size_rel` = size_abs / (H·W); bucket "small" < 32², "medium" < 96² ≤ "large";
`first_appeared_frame` = first visible annotated-frame index (6 fps units, not 24 fps);
`visibility_changes` = visible↔invisible flips after that frame; `frame_count` = number of
annotated frames T. `edited_frame_count` is annotator effort and cannot be derived.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from masklet.errors import FormatError
from masklet.io._files import read_json, write_json_atomic
from masklet.io.formats._check import typed
from masklet.io.masks import RleLike, RleMask, rle_area, validate_rle

__all__ = [
    "SAV_FPS",
    "SAV_FRAME_STRIDE",
    "MaskletStats",
    "SavMasklet",
    "SavVideoAnnotation",
    "masklet_stats",
    "read_sav_json",
    "write_sav_json",
]

SAV_FPS = 24.0
SAV_FRAME_STRIDE = 4  # SA-V masks are at 6 fps: every 4th frame of the 24 fps video

_VIDEO_FIELDS = (  # (JSON key, accepted types), in the release's order
    ("video_id", (str,)),
    ("video_duration", (int, float)),
    ("video_frame_count", (int, float)),
    ("video_height", (int, float)),
    ("video_width", (int, float)),
    ("video_resolution", (int, float)),
    ("video_environment", (str, list)),
    ("video_split", (str,)),
)
_MASKLET_FIELDS = (  # per-masklet lists: (JSON key, SavMasklet attribute, accepted element types)
    ("masklet_id", "masklet_id", (int,)),
    ("masklet_size_rel", "size_rel", (int, float)),
    ("masklet_size_abs", "size_abs", (int, float)),
    ("masklet_size_bucket", "size_bucket", (str,)),
    ("masklet_visibility_changes", "visibility_changes", (int,)),
    ("masklet_first_appeared_frame", "first_appeared_frame", (int, float)),
    ("masklet_frame_count", "frame_count", (int,)),
    ("masklet_edited_frame_count", "edited_frame_count", (int,)),
    ("masklet_type", "masklet_type", (str,)),
)
_KNOWN_KEYS = (
    {k for k, _ in _VIDEO_FIELDS}
    | {k for k, _, _ in _MASKLET_FIELDS}
    | {
        "masklet",
        "masklet_stability_score",
        "masklet_num",
    }
)


@dataclass(frozen=True, slots=True)
class MaskletStats:
    """The SA-V fields that follow from a masklet's per-frame areas."""

    size_abs: float
    size_rel: float
    size_bucket: str
    visibility_changes: int
    first_appeared_frame: int  # annotated-frame index
    frame_count: int


def masklet_stats(areas: Sequence[int], *, resolution: int) -> MaskletStats:
    """Derive the SA-V size/visibility fields from per-annotated-frame areas (pixels)."""
    visible = np.asarray(areas) > 0  # (T,)
    if not visible.any():
        raise FormatError(
            "the masklet is empty on every annotated frame; SA-V masklets are visible at least once"
        )
    size_abs = float(np.asarray(areas, dtype=np.float64)[visible].mean())
    first = int(np.argmax(visible))
    after = visible[first:]
    return MaskletStats(
        size_abs=size_abs,
        size_rel=size_abs / resolution,
        size_bucket="small" if size_abs < 32**2 else "medium" if size_abs < 96**2 else "large",
        visibility_changes=int(np.count_nonzero(after[1:] != after[:-1])),
        first_appeared_frame=first,
        frame_count=int(visible.size),
    )


@dataclass(frozen=True, slots=True)
class SavMasklet:
    """One object's track: its per-frame RLEs and the per-masklet SA-V fields."""

    masklet_id: int
    rles: tuple[RleMask, ...]  # (T,) one per annotated frame, all-background where not visible
    size_rel: float
    size_abs: float
    size_bucket: str
    visibility_changes: int
    first_appeared_frame: float  # annotated-frame index; int or float as read
    frame_count: int
    edited_frame_count: int
    masklet_type: str  # "manual" or "auto"
    stability_score: tuple[float | None, ...] | None = None  # (T,) auto masklets; None for manual

    def mask(self, t: int) -> np.ndarray:
        """(H, W) bool mask on annotated frame `t` (video frame `SAV_FRAME_STRIDE * t`)."""
        return self.rles[t].decode()


@dataclass(frozen=True, slots=True)
class SavVideoAnnotation:
    """One SA-V annotation file: the video fields and its masklets (all manual or all auto)."""

    video_id: str
    video_duration: float
    video_frame_count: float
    video_height: float
    video_width: float
    video_resolution: float
    video_environment: Any  # "Indoor"/"Outdoor" in the files (the README says a list)
    video_split: str
    num_annotated_frames: int  # T
    masklets: tuple[SavMasklet, ...]
    extra: Mapping[str, Any] = field(default_factory=dict)  # unknown top-level keys, written back as read

    @property
    def size(self) -> tuple[int, int]:
        """(H, W) in pixels."""
        return int(self.video_height), int(self.video_width)

    @property
    def annotated_frames(self) -> tuple[int, ...]:
        """Video frame index (24 fps) of each annotated frame t."""
        return tuple(SAV_FRAME_STRIDE * t for t in range(self.num_annotated_frames))

    def frame_masks(self, t: int) -> np.ndarray:
        """(N, H, W) bool masks of all masklets on annotated frame `t`."""
        h, w = self.size
        out = np.zeros((len(self.masklets), h, w), dtype=bool)
        for n, m in enumerate(self.masklets):
            out[n] = m.rles[t].decode()
        return out

    def to_eval_masks(self) -> dict[int, dict[int, RleMask]]:
        """{masklet_id: {video frame: RLE}}, the shape the SA-V evaluation layout writer takes."""
        frames = self.annotated_frames
        return {m.masklet_id: dict(zip(frames, m.rles, strict=True)) for m in self.masklets}

    def to_json_dict(self) -> dict[str, Any]:
        """The release's JSON object (key order included)."""
        out: dict[str, Any] = {key: getattr(self, key) for key, _ in _VIDEO_FIELDS}
        out["masklet"] = [
            [m.rles[t].to_dict() for m in self.masklets] for t in range(self.num_annotated_frames)
        ]
        for key, attr, _ in _MASKLET_FIELDS:
            out[key] = [getattr(m, attr) for m in self.masklets]
        if any(m.stability_score is not None for m in self.masklets):
            out["masklet_stability_score"] = [
                [None if m.stability_score is None else m.stability_score[t] for m in self.masklets]
                for t in range(self.num_annotated_frames)
            ]
        else:
            out["masklet_stability_score"] = [None] * len(self.masklets)
        out["masklet_num"] = len(self.masklets)
        out.update(self.extra)
        return out

    @classmethod
    def from_json_dict(cls, obj: Any, *, source: str = "<SA-V dict>") -> SavVideoAnnotation:
        """Validate and type a loaded SA-V JSON object; `source` names it in errors."""
        return _parse(obj, source)

    @classmethod
    def from_masks(
        cls,
        masklets: Sequence[Sequence[np.ndarray | RleLike]],
        *,
        video_id: str,
        video_frame_count: int,
        height: int,
        width: int,
        fps: float = SAV_FPS,
        masklet_ids: Sequence[int] | None = None,
        masklet_type: str = "manual",
        edited_frame_counts: Sequence[int] | None = None,
        stability_scores: Sequence[Sequence[float] | None] | None = None,
        environment: str = "",
        split: str = "train",
    ) -> SavVideoAnnotation:
        """Build a file from our own masklets, deriving every field that masks determine.

        `masklets[n][t]` is object n on annotated frame t (video frame 4·t): a (H, W) mask or
        an RLE. `stability_scores` is (N, T), for auto masklets. Ids default to 0..N-1 and
        edited-frame counts to 0. Video fields are written as floats, like the release.
        """
        n_obj = len(masklets)
        ids = list(range(n_obj)) if masklet_ids is None else [int(i) for i in masklet_ids]
        edited = [0] * n_obj if edited_frame_counts is None else [int(e) for e in edited_frame_counts]
        if len(ids) != n_obj or len(edited) != n_obj or len(set(ids)) != n_obj:
            raise FormatError(f"{n_obj} masklets need {n_obj} distinct ids and edited-frame counts")
        if stability_scores is not None and len(stability_scores) != n_obj:
            raise FormatError(f"stability_scores has {len(stability_scores)} rows for {n_obj} masklets")
        lengths = {len(m) for m in masklets}
        if len(lengths) > 1:
            raise FormatError(f"masklets cover different numbers of annotated frames: {sorted(lengths)}")
        n_frames = lengths.pop() if lengths else math.ceil(video_frame_count / SAV_FRAME_STRIDE)
        _check_frames_fit(n_frames, video_frame_count, f"SA-V video {video_id}")
        built = []
        for n, frames in enumerate(masklets):
            rles = tuple(
                _to_rle(m, (height, width), f"masklet {ids[n]} frame {t}") for t, m in enumerate(frames)
            )
            stats = masklet_stats([rle_area(r) for r in rles], resolution=height * width)
            score = None
            if stability_scores is not None and stability_scores[n] is not None:
                score = tuple(float(s) for s in stability_scores[n])
                if len(score) != n_frames:
                    raise FormatError(f"masklet {ids[n]}: {len(score)} stability scores for {n_frames} frames")
            built.append(
                SavMasklet(
                    masklet_id=ids[n],
                    rles=rles,
                    size_rel=stats.size_rel,
                    size_abs=stats.size_abs,
                    size_bucket=stats.size_bucket,
                    visibility_changes=stats.visibility_changes,
                    first_appeared_frame=stats.first_appeared_frame,
                    frame_count=stats.frame_count,
                    edited_frame_count=edited[n],
                    masklet_type=masklet_type,
                    stability_score=score,
                )
            )
        return cls(
            video_id=video_id,
            video_duration=float(video_frame_count) / fps,
            video_frame_count=float(video_frame_count),
            video_height=float(height),
            video_width=float(width),
            video_resolution=float(height * width),
            video_environment=environment,
            video_split=split,
            num_annotated_frames=n_frames,
            masklets=tuple(built),
        )


def _to_rle(mask: np.ndarray | RleLike, size: tuple[int, int], where: str) -> RleMask:
    if isinstance(mask, np.ndarray):
        if mask.shape != size:
            raise FormatError(f"{where}: mask shape {mask.shape} is not the video size {size}")
        return RleMask.from_mask(mask)
    return validate_rle(mask, expected_size=size, where=where)


def _check_frames_fit(n_frames: int, video_frame_count: float, where: str) -> None:
    last = SAV_FRAME_STRIDE * (n_frames - 1)
    if n_frames > 0 and last >= video_frame_count:
        raise FormatError(
            f"{where}: {n_frames} annotated frames at stride {SAV_FRAME_STRIDE} reach video frame {last}, "
            f"past the end of a {video_frame_count:g}-frame video; is video_frame_count right?"
        )


def _parse(obj: Any, source: str) -> SavVideoAnnotation:
    if not isinstance(obj, dict):
        raise FormatError(f"{source}: an SA-V file holds a JSON object, got {type(obj).__name__}")
    missing = [k for k in _KNOWN_KEYS if k not in obj]
    if missing:
        raise FormatError(
            f"{source}: missing field(s) {', '.join(sorted(missing))}; is this an SA-V annotation file?"
        )
    video = {key: typed(obj[key], kinds, f"{source}: {key}") for key, kinds in _VIDEO_FIELDS}
    n_obj = typed(obj["masklet_num"], (int,), f"{source}: masklet_num")
    columns = {}
    for key, attr, kinds in _MASKLET_FIELDS:
        values = typed(obj[key], (list,), f"{source}: {key}")
        if len(values) != n_obj:
            raise FormatError(f"{source}: {key} has {len(values)} entries but masklet_num is {n_obj}")
        columns[attr] = [typed(v, kinds, f"{source}: {key}[{i}]") for i, v in enumerate(values)]
    for key in ("video_height", "video_width"):
        if video[key] != int(video[key]) or video[key] < 0:
            raise FormatError(f"{source}: {key} must be a whole number of pixels, got {video[key]!r}")
    size = (int(video["video_height"]), int(video["video_width"]))
    rows = typed(obj["masklet"], (list,), f"{source}: masklet")
    _check_frames_fit(len(rows), video["video_frame_count"], f"{source}: masklet")
    rles: list[list[RleMask]] = [[] for _ in range(n_obj)]
    for t, row in enumerate(rows):
        row = typed(row, (list,), f"{source}: masklet[{t}]")
        if len(row) != n_obj:
            raise FormatError(f"{source}: masklet[{t}] has {len(row)} RLEs but masklet_num is {n_obj}")
        for n, rle in enumerate(row):
            rles[n].append(validate_rle(rle, expected_size=size, where=f"{source}: masklet[{t}][{n}]"))
    scores = _parse_stability(obj["masklet_stability_score"], n_obj, len(rows), source)
    masklets = tuple(
        SavMasklet(rles=tuple(rles[n]), stability_score=scores[n], **{a: columns[a][n] for a in columns})
        for n in range(n_obj)
    )
    return SavVideoAnnotation(
        **video,
        num_annotated_frames=len(rows),
        masklets=masklets,
        extra={k: v for k, v in obj.items() if k not in _KNOWN_KEYS},
    )


def _parse_stability(
    value: Any, n_obj: int, n_frames: int, source: str
) -> list[tuple[float | None, ...] | None]:
    where = f"{source}: masklet_stability_score"
    value = typed(value, (list,), where)
    if all(v is None for v in value) and len(value) == n_obj:
        return [None] * n_obj  # manual files: one null per masklet
    if len(value) != n_frames:
        raise FormatError(
            f"{where}: expected {n_obj} nulls (manual) or {n_frames} per-frame lists (auto), got {len(value)} entries"
        )
    per_obj: list[list[float | None]] = [[] for _ in range(n_obj)]
    for t, row in enumerate(value):
        row = typed(row, (list,), f"{where}[{t}]")
        if len(row) != n_obj:
            raise FormatError(f"{where}[{t}] has {len(row)} scores but masklet_num is {n_obj}")
        for n, s in enumerate(row):
            per_obj[n].append(None if s is None else typed(s, (int, float), f"{where}[{t}][{n}]"))
    return [tuple(p) for p in per_obj]


def read_sav_json(path: str | os.PathLike[str]) -> SavVideoAnnotation:
    """Read and validate one SA-V `*_manual.json` / `*_auto.json` file."""
    path = Path(path)
    return _parse(read_json(path), str(path))


def write_sav_json(path: str | os.PathLike[str], annotation: SavVideoAnnotation) -> Path:
    """Write `annotation` in the release's layout (temporary file, then rename)."""
    return write_json_atomic(path, annotation.to_json_dict())

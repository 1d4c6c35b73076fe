"""The store's results: frozen dataclasses copied out of the table rows (`as_project(row)`, ...).

A record never reaches back into the database; JSON columns come out as read-only mappings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime
from types import MappingProxyType
from typing import Any, TypeVar

from masklet.engine.schema import (
    Base,
    EventRow,
    FrameMaskRow,
    JobRow,
    MaskletRow,
    ProjectRow,
    PromptRow,
    UserRow,
    VideoRow,
)

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Video:
    id: int
    project_id: int
    path: str
    fps: float
    width: int
    height: int
    frame_count: int
    content_hash: str
    meta: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Masklet:
    id: int
    video_id: int
    obj_id: int
    category: str | None
    type: str  # "manual" | "auto"
    status: str  # "draft" | "in_review" | "accepted" | "rejected"
    version: int
    meta: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class FrameMask:
    masklet_id: int
    frame: int
    size: tuple[int, int]  # (H, W)
    counts: str  # compressed COCO RLE counts
    source: str  # "manual" | "click_model" | "propagated" | "auto"
    version: int
    updated_at: datetime

    @property
    def rle(self) -> dict[str, Any]:
        """A fresh COCO RLE dict, ready for `pycocotools.mask.decode`."""
        return {"size": list(self.size), "counts": self.counts}


@dataclass(frozen=True, slots=True)
class Prompt:
    id: int
    masklet_id: int
    frame: int
    kind: str  # "click" | "box" | "mask"
    payload: Mapping[str, Any]
    by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    at: datetime
    by: str
    action: str
    project_id: int | None
    video_id: int | None
    masklet_id: int | None
    frame: int | None
    phase: int | None
    duration_s: float | None
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class User:
    """A web-tool user; the password hash stays in the database."""

    id: int
    name: str
    role: str  # vocabulary.Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Job:
    """A propagation run (see `schema.JobRow`)."""

    id: int
    masklet_id: int
    video_id: int
    phase: int
    by: str
    start_frame: int | None
    reverse: bool
    status: str  # vocabulary.JobStatus
    frames_done: int
    frames_total: int
    last_frame: int | None
    cancel_requested: bool
    error: str | None
    resumed_from: int | None
    created_at: datetime
    heartbeat_at: datetime
    finished_at: datetime | None


def _read_only(text: str) -> Mapping[str, Any]:
    return MappingProxyType(json.loads(text))


def _copy(cls: type[_T], row: Base, **converted: Any) -> _T:
    """Copy a row into its frozen dataclass; `converted` overrides fields stored in another form."""
    return cls(
        **{f.name: converted[f.name] if f.name in converted else getattr(row, f.name) for f in fields(cls)}
    )


def as_project(row: ProjectRow) -> Project:
    return _copy(Project, row)


def as_video(row: VideoRow) -> Video:
    return _copy(Video, row, meta=_read_only(row.meta))


def as_masklet(row: MaskletRow) -> Masklet:
    return _copy(Masklet, row, meta=_read_only(row.meta))


def as_frame_mask(row: FrameMaskRow) -> FrameMask:
    rle = json.loads(row.rle)
    return _copy(FrameMask, row, size=tuple(rle["size"]), counts=rle["counts"])


def as_prompt(row: PromptRow) -> Prompt:
    return _copy(Prompt, row, payload=_read_only(row.payload))


def as_event(row: EventRow) -> Event:
    return _copy(Event, row, payload=_read_only(row.payload))


def as_user(row: UserRow) -> User:
    return _copy(User, row)


def as_job(row: JobRow) -> Job:
    return _copy(Job, row)

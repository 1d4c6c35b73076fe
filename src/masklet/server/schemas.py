"""The API's request and response bodies (pydantic), apart from the database rows and records."""

from __future__ import annotations

from datetime import datetime
from pathlib import PurePath
from typing import Annotated, Any

from annotated_types import Ge, Le
from pydantic import BaseModel, ConfigDict, Field, model_validator

from masklet.engine.projects import video_name
from masklet.engine.records import Masklet, Video
from masklet.engine.vocabulary import MaskletStatus, MaskletType, Role, TokenKind

# Numbers a request names (ids, frames, versions): the database stores 64-bit integers, so
# anything outside that range is refused as invalid (422) before it reaches a query.
MAX_INT64 = 2**63 - 1
Id = Annotated[int, Ge(0), Le(MAX_INT64)]
FrameIndex = Annotated[int, Ge(0), Le(MAX_INT64)]
Version = Annotated[int, Ge(0), Le(MAX_INT64)]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class LoginRequest(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)
    kind: TokenKind = TokenKind.SESSION


class UserOut(_Out):
    id: int
    name: str
    role: Role
    created_at: datetime


class LoginResponse(BaseModel):
    token: str
    kind: TokenKind
    user: UserOut


class ProjectCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)


class ProjectOut(_Out):
    id: int
    name: str
    created_at: datetime


class ProjectSummaryOut(BaseModel):
    project: ProjectOut
    videos: int
    masklets: int
    by_status: dict[MaskletStatus, int]


class VideoRegister(BaseModel):
    path: str = Field(
        min_length=1, max_length=4096, description="a video file or frame folder under a served folder"
    )
    fps: float | None = Field(default=None, gt=0, description="needed for frame folders")


class VideoOut(_Out):
    id: int
    project_id: int
    name: str = Field(description="its name in exports (SA-V video_id, else the file stem)")
    file: str = Field(description="the file or folder name (no server path)")
    fps: float
    width: int
    height: int
    frame_count: int
    created_at: datetime

    @classmethod
    def of(cls, video: Video) -> VideoOut:
        return cls.model_validate(
            {**{k: getattr(video, k) for k in ("id", "project_id", "fps", "width", "height", "frame_count",
                                               "created_at")},
             "name": video_name(video), "file": PurePath(video.path).name}
        )  # fmt: skip


class MaskletOut(_Out):
    id: int
    video_id: int
    obj_id: int
    name: str | None = Field(default=None, description="the object's display name, if given")
    category: str | None
    type: MaskletType
    status: MaskletStatus
    version: int

    @model_validator(mode="before")
    @classmethod
    def _from_masklet(cls, value: Any) -> Any:
        if isinstance(value, Masklet):
            fields = ("id", "video_id", "obj_id", "category", "type", "status", "version")
            return {**{f: getattr(value, f) for f in fields}, "name": value.meta.get("name")}
        return value


class MaskletDescribe(BaseModel):
    """A masklet's new name and/or category (a field left out stays; null clears it)."""

    version: Version = Field(description="the masklet version this change is based on (409 if stale)")
    name: str | None = Field(default=None, max_length=200)
    category: str | None = Field(default=None, max_length=200)


class ErrorOut(BaseModel):
    detail: str

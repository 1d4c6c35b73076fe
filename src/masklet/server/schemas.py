"""The API's request and response bodies (pydantic), apart from the database rows and records."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from masklet.engine.vocabulary import MaskletStatus, MaskletType, Role, TokenKind


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
    fps: float
    width: int
    height: int
    frame_count: int
    created_at: datetime


class MaskletOut(_Out):
    id: int
    video_id: int
    obj_id: int
    category: str | None
    type: MaskletType
    status: MaskletStatus
    version: int


class ErrorOut(BaseModel):
    detail: str

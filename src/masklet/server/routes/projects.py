"""Projects, their videos (registered by a path under a served folder, or uploaded), masklets,
review; frames as JPEG."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from masklet.engine import service
from masklet.engine.permissions import Permission
from masklet.engine.uploads import (
    UploadTooLarge,
    add_uploaded_video,
    check_upload_name,
    staging_dir,
)
from masklet.engine.vocabulary import MaskletStatus, ReviewAction
from masklet.errors import MaskletError
from masklet.server.deps import Reader, SettingsDep, StoreDep, user_allowed_to
from masklet.server.paths import served_path
from masklet.server.schemas import (
    FrameIndex,
    Id,
    MaskletOut,
    ProjectCreate,
    ProjectOut,
    ProjectSummaryOut,
    Version,
    VideoOut,
    VideoRegister,
)

router = APIRouter(prefix="/api", tags=["projects"])
Manager = user_allowed_to(Permission.MANAGE, "manage projects and videos")


@router.get("/projects", response_model=list[ProjectSummaryOut])
def list_projects(
    store: StoreDep,
    _: Reader,
) -> list[ProjectSummaryOut]:
    return [
        ProjectSummaryOut(project=ProjectOut.model_validate(s.project), videos=s.videos, masklets=s.masklets,
                          by_status=dict(s.by_status))
        for s in service.project_summaries(store)
    ]  # fmt: skip


@router.post("/projects", response_model=ProjectOut, status_code=201)
def create_project(
    body: ProjectCreate,
    store: StoreDep,
    user: Manager,
) -> ProjectOut:
    return ProjectOut.model_validate(store.create_project(body.name, by=user.name))


@router.get("/projects/{project_id}", response_model=ProjectOut)
def get_project(
    project_id: Id,
    store: StoreDep,
    _: Reader,
) -> ProjectOut:
    return ProjectOut.model_validate(service.find_project(store, project_id))


@router.get("/projects/{project_id}/videos", response_model=list[VideoOut])
def list_videos(
    project_id: Id,
    store: StoreDep,
    _: Reader,
) -> list[VideoOut]:
    project = service.find_project(store, project_id)
    return [VideoOut.of(v) for v in store.list_videos(project.id)]


@router.post("/projects/{project_id}/videos", response_model=VideoOut, status_code=201)
def register_video(
    project_id: Id,
    body: VideoRegister,
    settings: SettingsDep,
    store: StoreDep,
    user: Manager,
) -> VideoOut:
    path = served_path(body.path, settings.media_roots)
    _, video = service.add_project_video(store, project_id, path, by=user.name, fps=body.fps)
    return VideoOut.of(video)


@router.post(
    "/projects/{project_id}/videos/upload",
    response_model=VideoOut,
    status_code=201,
    responses={413: {"description": "larger than the server's upload limit"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def upload_video(
    project_id: Id,
    request: Request,
    settings: SettingsDep,
    store: StoreDep,
    user: Manager,
    name: Annotated[str, Query(min_length=1, max_length=128, description="the file name, e.g. clip.mp4")],
) -> VideoOut:
    """The request body is the video file itself (not a form): `curl --data-binary @clip.mp4`."""
    limit = settings.max_upload_mib * 2**20
    check_upload_name(name)  # before reading a byte
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise UploadTooLarge(limit)
    staged = await run_in_threadpool(_staging_file, settings.data_dir)
    try:
        size = 0
        with staged.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise UploadTooLarge(limit)
                out.write(chunk)
        if size == 0:
            raise MaskletError(f"{name!r}: the request body is empty; send the video file as the body")
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    _, video = await run_in_threadpool(
        add_uploaded_video, store, project_id, staged, name, settings.data_dir, by=user.name
    )
    return VideoOut.of(video)


def _staging_file(data_dir: Path) -> Path:
    handle, path = tempfile.mkstemp(suffix=".part", dir=staging_dir(data_dir))
    os.close(handle)
    return Path(path)


@router.get("/projects/{project_id}/masklets", response_model=list[MaskletOut])
def list_masklets(
    project_id: Id, store: StoreDep, _: Reader, status: MaskletStatus | None = None
) -> list[MaskletOut]:
    project = service.find_project(store, project_id)
    return [MaskletOut.model_validate(m) for m in store.list_masklets(project_id=project.id, status=status)]


class ReviewRequest(BaseModel):
    action: ReviewAction
    version: Version | None = Field(
        default=None, description="the masklet version reviewed (default: current)"
    )
    reason: str | None = Field(default=None, max_length=2000)


@router.post("/projects/{project_id}/masklets/{masklet_id}/review", response_model=MaskletOut)
def review_masklet(
    project_id: Id,
    masklet_id: Id,
    body: ReviewRequest,
    store: StoreDep,
    user: Reader,
) -> MaskletOut:
    done = service.decide_review(
        store, project_id, masklet_id, body.action, by=user.name, version=body.version, reason=body.reason,
        role=user.role,
    )  # fmt: skip
    return MaskletOut.model_validate(done)


@router.get("/videos/{video_id}/frames/{frame}.jpg", response_class=FileResponse)
def frame_jpeg(video_id: Id, frame: FrameIndex, request: Request, store: StoreDep, _: Reader) -> FileResponse:
    video = store.get_video(video_id)
    path = request.app.state.frames.jpeg(video, frame)
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"})

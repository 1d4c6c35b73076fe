"""Masklets of a video, the masks of a frame, masks drawn by hand; effort; exports as downloads."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Query, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from masklet.engine import service
from masklet.engine.records import FrameMask
from masklet.engine.vocabulary import MaskletStatus
from masklet.server.deps import Reader, StoreDep
from masklet.server.model import ASSISTANCE_OFF, ModelUnavailable
from masklet.server.schemas import FrameIndex, Id, MaskletDescribe, MaskletOut, Version

router = APIRouter(prefix="/api/projects/{project_id}", tags=["masks"])
Editor = Reader  # logged in; the engine checks the role may edit (PermissionDenied: 403)
EXPORT_FORMATS = ("sav", "sav-eval", "davis", "coco", "ytvis")


class MaskletCreate(BaseModel):
    obj_id: Id | None = Field(default=None, description="default: the video's next free object id")
    category: str | None = Field(default=None, max_length=200)


class Rle(BaseModel):
    size: tuple[int, int] = Field(description="(height, width)")
    counts: str = Field(max_length=50_000_000, description="COCO compressed RLE counts")


class FrameMaskOut(BaseModel):
    masklet_id: int
    frame: int
    rle: Rle
    source: str
    version: int


class MaskSave(BaseModel):
    rle: Rle
    expected_version: Version | None = Field(
        description="the version drawn on; null when the frame had no mask"
    )
    seconds: float | None = Field(default=None, ge=0, description="annotator time the mask took")
    phase: int = Field(
        default=1, ge=1, le=3, description="in phases 2 and 3 the mask is also the frame's prompt"
    )


def _mask_out(m: FrameMask) -> FrameMaskOut:
    return FrameMaskOut(
        masklet_id=m.masklet_id,
        frame=m.frame,
        rle=Rle(size=m.size, counts=m.counts),
        source=m.source,
        version=m.version,
    )


@router.post("/videos/{video_id}/masklets", response_model=MaskletOut, status_code=201)
def create_masklet(
    project_id: Id, video_id: Id, body: MaskletCreate, store: StoreDep, user: Editor
) -> MaskletOut:
    masklet = service.create_video_masklet(
        store, project_id, video_id, by=user.name, role=user.role, obj_id=body.obj_id, category=body.category
    )
    return MaskletOut.model_validate(masklet)


@router.patch("/masklets/{masklet_id}", response_model=MaskletOut)
def describe_masklet(
    project_id: Id, masklet_id: Id, body: MaskletDescribe, store: StoreDep, user: Editor
) -> MaskletOut:
    """Rename the object and/or set its category; 409 when the masklet changed since `version`."""
    changes = {f: getattr(body, f) for f in ("name", "category") if f in body.model_fields_set}
    masklet = service.describe_masklet(
        store, project_id, masklet_id, expected_version=body.version, by=user.name, role=user.role, **changes
    )
    return MaskletOut.model_validate(masklet)


@router.delete("/masklets/{masklet_id}", status_code=204)
def delete_masklet(
    project_id: Id,
    masklet_id: Id,
    request: Request,
    store: StoreDep,
    user: Editor,
    version: Annotated[Version, Query(description="the masklet version being deleted (409 if stale)")],
) -> None:
    """Delete an object that is not accepted, with all its masks."""
    service.delete_video_masklet(
        store, project_id, masklet_id, expected_version=version, by=user.name, role=user.role,
        workflows=request.app.state.workflows,
    )  # fmt: skip


@router.get("/videos/{video_id}/frames/{frame}/masks", response_model=list[FrameMaskOut])
def masks_of_frame(
    project_id: Id, video_id: Id, frame: FrameIndex, store: StoreDep, _: Reader
) -> list[FrameMaskOut]:
    found = service.frame_masks(store, project_id, video_id, frame)
    return [_mask_out(m) for m in found.masks.values()]


class LaneOut(BaseModel):
    masklet: MaskletOut
    sources: dict[int, str]  # frame -> manual | click_model | propagated | auto


@router.get("/videos/{video_id}/timeline", response_model=list[LaneOut])
def timeline(project_id: Id, video_id: Id, store: StoreDep, _: Reader) -> list[LaneOut]:
    """Per masklet, which frames have a mask and where it came from (hand-made or tracked)."""
    return [
        LaneOut(masklet=MaskletOut.model_validate(lane.masklet), sources=dict(lane.sources))
        for lane in service.video_timeline(store, project_id, video_id)
    ]


@router.put("/masklets/{masklet_id}/masks/{frame}", response_model=FrameMaskOut)
def save_mask(
    project_id: Id,
    masklet_id: Id,
    frame: FrameIndex,
    body: MaskSave,
    request: Request,
    store: StoreDep,
    user: Editor,
) -> FrameMaskOut:
    """A mask drawn by hand; 409 when someone saved this frame since `expected_version`."""
    saved = service.save_drawn_mask(
        store, project_id, masklet_id, frame, body.rle.model_dump(), expected_version=body.expected_version,
        by=user.name, role=user.role, seconds=body.seconds, phase=body.phase, workflows=request.app.state.workflows,
    )  # fmt: skip
    return _mask_out(saved)


@router.delete("/masklets/{masklet_id}/masks/{frame}", status_code=204)
def delete_mask(
    project_id: Id,
    masklet_id: Id,
    frame: FrameIndex,
    store: StoreDep,
    user: Editor,
    expected_version: Annotated[Version, Query()],
) -> None:
    service.delete_mask(
        store, project_id, masklet_id, frame, expected_version=expected_version, by=user.name, role=user.role
    )


class PromptRequest(BaseModel):
    frame: FrameIndex
    phase: int = Field(ge=1, le=3, description="1 and 2: the image model; 3: the tracking session")
    points: list[tuple[float, float]] | None = Field(
        default=None, max_length=200, description="(x, y) video pixels"
    )
    labels: list[int] | None = Field(default=None, max_length=200, description="1 adds, 0 removes")
    box: tuple[float, float, float, float] | None = Field(default=None, description="x0, y0, x1, y1")
    clear: bool = Field(default=False, description="forget the frame's earlier clicks first")
    seconds: float | None = Field(default=None, ge=0)


@router.post("/masklets/{masklet_id}/prompts", response_model=FrameMaskOut)
def prompt(
    project_id: Id, masklet_id: Id, body: PromptRequest, request: Request, store: StoreDep, user: Editor
) -> FrameMaskOut:
    """Clicks or a box on a frame: the model's new mask for it, already saved (503 without a model)."""
    workflows = request.app.state.workflows
    if workflows is None:
        raise ModelUnavailable(ASSISTANCE_OFF)
    saved = service.prompt_model(
        store, workflows, project_id, masklet_id, body.frame, phase=body.phase, by=user.name, role=user.role,
        points=body.points, labels=body.labels, box=body.box, clear=body.clear, seconds=body.seconds,
    )  # fmt: skip
    return _mask_out(saved)


@router.get("/effort")
def effort(project_id: Id, store: StoreDep, _: Reader) -> dict[str, Any]:
    """The SAM 2 paper's effort table for the project (per phase), as `masklet effort --json`."""
    _, table = service.project_effort(store, project_id)
    return table.to_json()


@router.get("/export", response_class=FileResponse)
def export(
    project_id: Id,
    store: StoreDep,
    _: Reader,
    cleanup: BackgroundTasks,
    format: str = Query(pattern="^(" + "|".join(EXPORT_FORMATS) + ")$"),
    status: MaskletStatus | None = None,
) -> FileResponse:
    """The project's masklets in one annotation format, as a zip of what `masklet export` writes."""
    project = service.find_project(store, project_id)
    work = Path(tempfile.mkdtemp(prefix="masklet-export-"))
    cleanup.add_task(shutil.rmtree, work, ignore_errors=True)
    service.export_project_files(store, project.id, format, work / "export", status=status)
    archive = shutil.make_archive(
        str(work / f"project{project.id}_{format}"), "zip", root_dir=work / "export"
    )
    return FileResponse(archive, media_type="application/zip", filename=Path(archive).name)

"""Propagation jobs: start, list, watch (server-sent events), cancel, resume."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from masklet.engine import jobs
from masklet.engine.vocabulary import JobStatus
from masklet.server.deps import Reader, StoreDep
from masklet.server.model import ASSISTANCE_OFF, ModelUnavailable
from masklet.server.schemas import FrameIndex, Id

router = APIRouter(prefix="/api/projects/{project_id}", tags=["jobs"])
POLL_S = 0.25


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    masklet_id: int
    video_id: int
    phase: int
    by: str
    start_frame: int | None
    reverse: bool
    status: JobStatus
    frames_done: int
    frames_total: int
    last_frame: int | None
    cancel_requested: bool
    error: str | None
    resumed_from: int | None
    created_at: datetime
    finished_at: datetime | None


class PropagateRequest(BaseModel):
    phase: int = Field(ge=2, le=3)
    start: FrameIndex | None = Field(default=None, description="default: the first annotated frame")
    reverse: bool = False


def _runner(request: Request) -> jobs.JobRunner:
    runner = request.app.state.jobs
    if runner is None:
        raise ModelUnavailable(ASSISTANCE_OFF)
    return runner


@router.post("/masklets/{masklet_id}/propagate", response_model=JobOut, status_code=202)
def propagate(
    project_id: Id, masklet_id: Id, body: PropagateRequest, request: Request, store: StoreDep, user: Reader
) -> JobOut:
    """Start tracking the masklet (forward, or backward with `reverse`); watch it at .../jobs/{id}/events."""
    job = jobs.start_propagation(
        store, _runner(request), project_id, masklet_id, phase=body.phase, by=user.name, role=user.role,
        start=body.start, reverse=body.reverse,
    )  # fmt: skip
    return JobOut.model_validate(job)


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(project_id: Id, store: StoreDep, _: Reader, video_id: Id | None = None) -> list[JobOut]:
    from masklet.engine.service import find_project, video_of_project

    project = find_project(store, project_id)
    videos = (
        [video_of_project(store, project, video_id)]
        if video_id is not None
        else store.list_videos(project.id)
    )
    return [JobOut.model_validate(j) for v in videos for j in store.list_jobs(video_id=v.id)]


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(project_id: Id, job_id: Id, store: StoreDep, _: Reader) -> JobOut:
    return JobOut.model_validate(jobs.job_of_project(store, project_id, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel(project_id: Id, job_id: Id, store: StoreDep, user: Reader) -> JobOut:
    return JobOut.model_validate(jobs.cancel_job(store, project_id, job_id, role=user.role))


@router.post("/jobs/{job_id}/resume", response_model=JobOut, status_code=202)
def resume(project_id: Id, job_id: Id, request: Request, store: StoreDep, user: Reader) -> JobOut:
    job = jobs.resume_job(store, _runner(request), project_id, job_id, by=user.name, role=user.role)
    return JobOut.model_validate(job)


@router.get("/jobs/{job_id}/events")
def events(project_id: Id, job_id: Id, store: StoreDep, _: Reader) -> StreamingResponse:
    """Server-sent events: the job as JSON each time it changes, the last one when it has ended."""
    jobs.job_of_project(store, project_id, job_id)

    def stream() -> Iterator[str]:
        last = None
        while True:
            job = JobOut.model_validate(store.get_job(job_id))
            text = job.model_dump_json()
            if text != last:
                yield f"event: job\ndata: {text}\n\n"
                last = text
            if job.status.final:
                return
            time.sleep(POLL_S)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

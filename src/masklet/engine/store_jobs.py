"""`Store` methods for propagation jobs: create, progress (with the heartbeat), cancel, finish, interrupted."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from masklet.engine.records import Job, as_job
from masklet.engine.schema import JOB_STATUSES, JobRow, utc_now
from masklet.engine.store_base import (
    StoreMethods,
    add_event,
    add_row,
    get_row,
    masklet_and_video,
    where_given,
)
from masklet.engine.store_checks import InvalidEditError, one_of
from masklet.engine.vocabulary import EventAction, JobStatus

_OPEN = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


class JobMethods(StoreMethods):
    def create_job(
        self,
        masklet_id: int,
        *,
        phase: int,
        by: str,
        start_frame: int | None,
        reverse: bool,
        frames_total: int,
        resumed_from: int | None = None,
    ) -> Job:
        """A queued propagation job of a masklet."""
        with self._write() as s:
            _, video = masklet_and_video(s, masklet_id, lock=False)
            now = utc_now()
            row = JobRow(
                masklet_id=masklet_id, video_id=video.id, phase=phase, by=by, start_frame=start_frame,
                reverse=bool(reverse), status=JobStatus.QUEUED.value, frames_done=0, frames_total=frames_total,
                last_frame=None, cancel_requested=False, error=None, resumed_from=resumed_from, created_at=now,
                heartbeat_at=now, finished_at=None,
            )  # fmt: skip
            add_row(s, row, "job")
            payload = {
                "job_id": row.id,
                "start": start_frame,
                "reverse": bool(reverse),
                "resumed_from": resumed_from,
            }
            add_event(
                s, EventAction.JOB_START, payload, by=by, video=video, masklet_id=masklet_id, phase=phase
            )
            return as_job(row)

    def get_job(self, job_id: int) -> Job:
        with self._read() as s:
            return as_job(get_row(s, JobRow, job_id))

    def list_jobs(
        self, *, video_id: int | None = None, masklet_id: int | None = None, status: str | None = None
    ) -> list[Job]:
        if status is not None:
            one_of(status, JOB_STATUSES, "job status")
        stmt = where_given(
            select(JobRow).order_by(JobRow.id),
            (JobRow.video_id, video_id), (JobRow.masklet_id, masklet_id), (JobRow.status, status),
        )  # fmt: skip
        with self._read() as s:
            return [as_job(r) for r in s.scalars(stmt)]

    def start_job(self, job_id: int) -> Job:
        """queued -> running; InvalidEditError for any other state."""
        with self._write() as s:
            row = get_row(s, JobRow, job_id, lock=True)
            if row.status != JobStatus.QUEUED:
                raise InvalidEditError(f"job {job_id} is {row.status}, not queued")
            row.status, row.heartbeat_at = JobStatus.RUNNING.value, utc_now()
            return as_job(row)

    def record_job_progress(self, job_id: int, *, frames_done: int, last_frame: int) -> bool:
        """Count a saved frame (and beat the heartbeat); True if a cancel was asked for."""
        with self._write() as s:
            row = get_row(s, JobRow, job_id, lock=True)
            row.frames_done, row.last_frame, row.heartbeat_at = frames_done, last_frame, utc_now()
            return bool(row.cancel_requested)

    def beat_jobs(self, job_ids: list[int]) -> None:
        """Renew the heartbeat of running jobs (their worker is alive)."""
        if not job_ids:
            return
        with self._write() as s:
            s.execute(
                update(JobRow)
                .where(JobRow.id.in_(job_ids), JobRow.status.in_(_OPEN))
                .values(heartbeat_at=utc_now())
            )

    def request_job_cancel(self, job_id: int) -> Job:
        """Ask the worker running the job to stop after its current frame (no effect on a finished job)."""
        with self._write() as s:
            row = get_row(s, JobRow, job_id, lock=True)
            if row.status in _OPEN:
                row.cancel_requested = True
            return as_job(row)

    def finish_job(self, job_id: int, status: JobStatus | str, *, error: str | None = None) -> Job:
        status = JobStatus(status)
        if not status.final:
            raise InvalidEditError(f"a job finishes as done, failed, cancelled or interrupted, not {status}")
        with self._write() as s:
            row = get_row(s, JobRow, job_id, lock=True)
            _, video = masklet_and_video(s, row.masklet_id, lock=False)
            now = utc_now()
            row.status, row.error, row.finished_at, row.heartbeat_at = status.value, error, now, now
            if status is JobStatus.DONE:
                row.frames_total = row.frames_done
            payload = {"job_id": job_id, "status": status.value, "frames": row.frames_done, "error": error}
            add_event(s, EventAction.JOB_END, payload, by=row.by, video=video, masklet_id=row.masklet_id,
                      phase=row.phase)  # fmt: skip
            return as_job(row)

    def interrupt_stale_jobs(self, *, stale_after: timedelta, now: datetime | None = None) -> list[int]:
        """Mark queued or running jobs without a heartbeat for `stale_after` as interrupted (their
        server stopped); returns their ids. The frames they saved stay."""
        now = utc_now() if now is None else now
        with self._write() as s:
            stmt = select(JobRow.id).where(JobRow.status.in_(_OPEN), JobRow.heartbeat_at < now - stale_after)
            ids = list(s.scalars(stmt))
            if ids:
                s.execute(
                    update(JobRow).where(JobRow.id.in_(ids)).values(
                        status=JobStatus.INTERRUPTED.value, finished_at=now,
                        error="the server stopped while the job ran; the frames saved before are kept",
                    )
                )  # fmt: skip
            return ids

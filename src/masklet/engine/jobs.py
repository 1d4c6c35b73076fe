"""Propagation as a job: queued in the database, run on a worker thread, saved frame by frame.

`start_propagation` records a job (status queued) and hands it to a `JobRunner`; the runner
tracks the masklet through its `WorkflowRegistry`, counts each saved frame on the job row and
stops after the current frame when a cancel was asked for (by anyone, through the database:
any worker). A runner beats the heartbeat of its running jobs every `beat_s` seconds and marks
open jobs without a heartbeat for `stale_after` interrupted (their server is gone): at start
and at every beat, so a job of a killed server shows as interrupted within `stale_after`,
whichever worker is alive. Every frame such a job saved stays. `resume_job` runs an ended
job's propagation again (same start and direction) as a new job.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from masklet.engine.permissions import Permission, require
from masklet.engine.records import Job
from masklet.engine.service import (
    ProjectRef,
    check_not_propagating,
    find_project,
    masklet_of_project,
    video_of_project,
)
from masklet.engine.store import InvalidEditError, Store
from masklet.engine.vocabulary import JobStatus, Role
from masklet.engine.workspaces import WorkflowRegistry
from masklet.errors import MaskletError

__all__ = ["JobRunner", "cancel_job", "job_of_project", "resume_job", "start_propagation"]

log = logging.getLogger(__name__)
BEAT_S = 5.0
STALE_AFTER = timedelta(seconds=30)  # no heartbeat for this long: its server is gone


class JobRunner:
    """Runs propagation jobs on `max_workers` threads over one WorkflowRegistry."""

    def __init__(
        self,
        store: Store,
        workflows: WorkflowRegistry,
        *,
        max_workers: int = 1,
        beat_s: float = BEAT_S,
        stale_after: timedelta = STALE_AFTER,
    ) -> None:
        self.store, self.workflows = store, workflows
        self.beat_s, self.stale_after = beat_s, stale_after
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="masklet-job")
        self._lock = threading.Lock()
        self._running: set[int] = set()
        self._stop = threading.Event()
        self._closing = False  # a cancel seen while closing ends the job as interrupted
        self._beat_thread: threading.Thread | None = None

    def start(self) -> list[int]:
        """On server start: mark jobs whose server stopped as interrupted (their ids); start beating."""
        ids = self.sweep()
        self._beat_thread = threading.Thread(target=self._beat, name="masklet-job-heartbeat", daemon=True)
        self._beat_thread.start()
        return ids

    def sweep(self) -> list[int]:
        """Mark open jobs without a heartbeat for `stale_after` interrupted; returns their ids."""
        ids = self.store.interrupt_stale_jobs(stale_after=self.stale_after)
        if ids:
            log.warning(
                "jobs %s were interrupted when their server stopped; their saved frames are kept", ids
            )
        return ids

    def _beat(self) -> None:
        while not self._stop.wait(self.beat_s):
            with self._lock:
                running = sorted(self._running)
            try:
                self.store.beat_jobs(running)
                self.sweep()
            except Exception:  # a database hiccup must not end the heartbeat
                log.exception("job heartbeat failed")

    def submit(self, job: Job) -> None:
        with self._lock:
            self._running.add(job.id)
        self._pool.submit(self._run, job.id)

    def is_running(self, job_id: int) -> bool:
        with self._lock:
            return job_id in self._running

    def _run(self, job_id: int) -> None:
        try:
            job = self.store.get_job(job_id)
            if job.cancel_requested:
                self._stopped(job_id)
                return
            self.store.start_job(job_id)
            done = 0
            with self.workflows.workflow(job.masklet_id, phase=job.phase, by=job.by) as work:
                for saved in work.propagate(job.start_frame, reverse=job.reverse):
                    done += 1
                    if self.store.record_job_progress(job_id, frames_done=done, last_frame=saved.frame):
                        self._stopped(job_id)
                        return
            self.store.finish_job(job_id, JobStatus.DONE)
        except Exception as exc:  # the job's failure is its row's; the worker thread lives on
            log.exception("job %s failed", job_id)
            try:
                self.store.finish_job(job_id, JobStatus.FAILED, error=f"{type(exc).__name__}: {exc}")
            except Exception:
                log.exception("job %s: could not record the failure", job_id)
        finally:
            with self._lock:
                self._running.discard(job_id)

    def _stopped(self, job_id: int) -> None:
        if self._closing:
            self.store.finish_job(
                job_id, JobStatus.INTERRUPTED, error="the server stopped; the frames saved are kept"
            )
        else:
            self.store.finish_job(job_id, JobStatus.CANCELLED)

    def close(self) -> None:
        """Stop: running jobs end after their current frame, as interrupted (they can be resumed)."""
        self._closing = True
        with self._lock:
            running = sorted(self._running)
        for job_id in running:
            self.store.request_job_cancel(job_id)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._stop.set()
        if self._beat_thread is not None:
            self._beat_thread.join()


def job_of_project(store: Store, project: ProjectRef, job_id: int) -> Job:
    job = store.get_job(job_id)
    video_of_project(store, find_project(store, project), job.video_id)
    return job


def start_propagation(
    store: Store,
    runner: JobRunner,
    project: ProjectRef,
    masklet_id: int,
    *,
    phase: int,
    by: str,
    role: Role | str | None = None,
    start: int | None = None,
    reverse: bool = False,
    resumed_from: int | None = None,
) -> Job:
    """Queue a propagation of a project's masklet (phases 2 and 3) and start it; returns the job.

    One open job per masklet: a second start while one is queued or running is refused.
    """
    if role is not None:
        require(role, Permission.EDIT, "propagate masklets")
    masklet = masklet_of_project(store, find_project(store, project), masklet_id)
    if phase not in (2, 3):
        raise MaskletError(f"propagation belongs to phases 2 and 3, not {phase}")
    check_not_propagating(store, masklet.id)
    with runner.workflows.workflow(masklet.id, phase=phase, by=by) as work:
        frames = work.frames_to_propagate(start, reverse=reverse)
        if not work.annotator_frames():
            raise MaskletError(
                f"masklet {masklet.id} has no annotated frame to propagate from; click a frame first"
            )
    job = store.create_job(
        masklet.id, phase=phase, by=by, start_frame=start, reverse=reverse, frames_total=len(frames),
        resumed_from=resumed_from,
    )  # fmt: skip
    runner.submit(job)
    return job


def cancel_job(store: Store, project: ProjectRef, job_id: int, *, role: Role | str | None = None) -> Job:
    """Ask a job to stop after its current frame; the frames it saved stay."""
    if role is not None:
        require(role, Permission.EDIT, "cancel propagation")
    job_of_project(store, project, job_id)
    return store.request_job_cancel(job_id)


def resume_job(
    store: Store,
    runner: JobRunner,
    project: ProjectRef,
    job_id: int,
    *,
    by: str,
    role: Role | str | None = None,
) -> Job:
    """Run an interrupted, cancelled or failed job's propagation again (a new job)."""
    old = job_of_project(store, project, job_id)
    if old.status == JobStatus.DONE or not JobStatus(old.status).final:
        raise InvalidEditError(
            f"job {job_id} is {old.status}; only an interrupted, cancelled or failed job resumes"
        )
    return start_propagation(
        store, runner, project, old.masklet_id, phase=old.phase, by=by, role=role, start=old.start_frame,
        reverse=old.reverse, resumed_from=old.id,
    )  # fmt: skip

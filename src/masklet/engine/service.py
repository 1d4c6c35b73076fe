"""The data engine's user actions, one function each, for the CLI and the server alike.

A front end parses its input (arguments, a request), calls one function here and renders the
result. The rules a user action needs (a project named by name or id, a video or masklet that
must belong to it, a ground-truth file that must fit the video, a rejection that needs a reason)
live here, not in a handler, so `masklet review --accept` and the review page cannot disagree.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from masklet.engine.effort import EffortTable, effort_table
from masklet.engine.permissions import REVIEW_PERMISSION, Permission, require
from masklet.engine.records import FrameMask, Masklet, Project, Video
from masklet.engine.review import QueueItem
from masklet.engine.store import InvalidEditError, Store
from masklet.engine.vocabulary import JobStatus, MaskletStatus, MaskSource, ReviewAction, Role
from masklet.errors import MaskletError, NotFoundError
from masklet.io.masks import RleMask

if TYPE_CHECKING:
    from masklet.engine.auto import AutoMaskletConfig, AutoResult
    from masklet.engine.projects import ImportResult
    from masklet.engine.simulate import MaskletWork
    from masklet.engine.workspaces import WorkflowRegistry

__all__ = [
    "MASKLET_STATUSES",
    "MaskletBusy",
    "FrameMasks",
    "ProjectSummary",
    "ReviewAction",
    "TimelineLane",
    "add_project_video",
    "auto_masklets_for_video",
    "check_not_propagating",
    "create_video_masklet",
    "decide_review",
    "delete_mask",
    "delete_video_masklet",
    "describe_masklet",
    "editable_masklet",
    "export_project_files",
    "find_project",
    "frame_masks",
    "import_into_project",
    "masklet_of_project",
    "project_effort",
    "project_review_queue",
    "project_summaries",
    "prompt_model",
    "read_ground_truth",
    "save_drawn_mask",
    "simulate_annotation",
    "video_of_project",
    "video_timeline",
]

MASKLET_STATUSES = tuple(s.value for s in MaskletStatus)
ProjectRef = str | int


class MaskletBusy(InvalidEditError):
    """The masklet is being propagated: its masks change under the job until it ends or is cancelled."""


def check_not_propagating(store: Store, masklet_id: int) -> None:
    """MaskletBusy while a propagation job of the masklet is queued or running."""
    for job in store.list_jobs(masklet_id=masklet_id):
        if not JobStatus(job.status).final:
            raise MaskletBusy(
                f"masklet {masklet_id} is being propagated (job {job.id}); wait for it to end or cancel it"
            )


def editable_masklet(
    store: Store, project: ProjectRef, masklet_id: int, role: Role | str | None, action: str
) -> Masklet:
    """The project's masklet, for an edit by `role` (None: not checked) while nothing propagates it."""
    if role is not None:
        require(role, Permission.EDIT, action)
    masklet = masklet_of_project(store, find_project(store, project), masklet_id)
    check_not_propagating(store, masklet.id)
    return masklet


# ------------------------------------------------------------------------------------- lookups
def find_project(store: Store, ref: ProjectRef) -> Project:
    """A project by name, or by id (an int, or digits when no project has that name)."""
    if isinstance(ref, int):
        return store.get_project(ref)
    try:
        return store.get_project_by_name(ref)
    except NotFoundError:
        if ref.isdigit():
            return store.get_project(int(ref))
        raise


def video_of_project(store: Store, project: Project, video_id: int) -> Video:
    """The video, checked to belong to `project` (NotFoundError otherwise)."""
    video = store.get_video(video_id)
    if video.project_id != project.id:
        raise NotFoundError(f"video {video.id} is not in project {project.name!r}")
    return video


def masklet_of_project(store: Store, project: Project, masklet_id: int) -> Masklet:
    """The masklet, checked to belong to a video of `project` (NotFoundError otherwise)."""
    masklet = store.get_masklet(masklet_id)
    if store.get_video(masklet.video_id).project_id != project.id:
        raise NotFoundError(f"masklet {masklet_id} is not in project {project.name!r}")
    return masklet


# ------------------------------------------------------------------------------------ projects
@dataclass(frozen=True, slots=True)
class ProjectSummary:
    project: Project
    videos: int
    masklets: int
    by_status: Mapping[str, int]  # every status of MASKLET_STATUSES, 0 when none


def project_summaries(store: Store) -> list[ProjectSummary]:
    """Every project with its video and masklet counts, by id."""
    out = []
    for p in store.list_projects():
        masklets = store.list_masklets(project_id=p.id)
        counts = {s: sum(1 for m in masklets if m.status == s) for s in MASKLET_STATUSES}
        out.append(ProjectSummary(p, len(store.list_videos(p.id)), len(masklets), counts))
    return out


def add_project_video(
    store: Store, project: ProjectRef, path: str | os.PathLike[str], *, by: str, fps: float | None = None
) -> tuple[Project, Video]:
    """Register a video file or frame folder in a project."""
    from masklet.engine.projects import add_video

    found = find_project(store, project)
    return found, add_video(store, found.id, path, by=by, fps=fps)


def import_into_project(
    store: Store,
    project: ProjectRef,
    path: str | os.PathLike[str],
    *,
    format: str,
    by: str,
    video_id: int | None = None,
    fps: float | None = None,
) -> list[ImportResult]:
    """Import annotations (SA-V, DAVIS, COCO, YouTube-VIS) into a project; one result per video."""
    from masklet.engine.projects import DEFAULT_FPS, import_annotations

    found = find_project(store, project)
    if video_id is not None:
        video_of_project(store, found, video_id)
    return import_annotations(
        store, found.id, path, format=format, by=by, video_id=video_id, fps=fps or DEFAULT_FPS
    )


def export_project_files(
    store: Store,
    project: ProjectRef,
    format: str,
    out: str | os.PathLike[str],
    *,
    status: str | None = None,
    overwrite: bool = False,
) -> list[Path]:
    """Export a project's masklets (see `engine.exports.export_project`); returns what was written."""
    from masklet.engine.exports import export_project

    if status is not None and status not in MASKLET_STATUSES:
        raise MaskletError(f"status must be one of {', '.join(MASKLET_STATUSES)}, got {status!r}")
    found = find_project(store, project)
    return export_project(store, found.id, format, out, status=status, overwrite=overwrite)


def project_effort(store: Store, project: ProjectRef) -> tuple[Project, EffortTable]:
    found = find_project(store, project)
    return found, effort_table(store, project_id=found.id)


# -------------------------------------------------------------------------------------- review
def decide_review(
    store: Store,
    project: ProjectRef,
    masklet_id: int,
    action: ReviewAction | str,
    *,
    by: str,
    version: int | None = None,
    reason: str | None = None,
    role: Role | str | None = None,
) -> Masklet:
    """Submit, accept or reject a masklet of the project; `version` defaults to the current one.

    A rejection needs a reason (what the annotator should fix). With `role` (the web tool's
    user), the role must allow the action: annotators submit, reviewers accept and reject.
    """
    from masklet.engine import review

    try:
        action = ReviewAction(action)
    except ValueError:
        raise MaskletError(
            f"review action must be one of {', '.join(ReviewAction)}, got {action!r}"
        ) from None
    if role is not None:
        require(role, REVIEW_PERMISSION[action], f"{action} a masklet")
    masklet = masklet_of_project(store, find_project(store, project), masklet_id)
    expected = masklet.version if version is None else version
    if action is ReviewAction.SUBMIT:
        return review.submit(store, masklet.id, expected_version=expected, by=by)
    if action is ReviewAction.ACCEPT:
        return review.accept(store, masklet.id, expected_version=expected, by=by, reason=reason)
    if not reason or not reason.strip():
        raise MaskletError("a rejection needs a reason (what the annotator should fix)")
    return review.reject(store, masklet.id, expected_version=expected, by=by, reason=reason)


def project_review_queue(store: Store, project: ProjectRef) -> tuple[Project, list[QueueItem]]:
    """The project's masklets in review, oldest first."""
    from masklet.engine.review import review_queue

    found = find_project(store, project)
    return found, review_queue(store, project_id=found.id)


# ---------------------------------------------------------------------- ground truth, annotation
def read_ground_truth(path: str | os.PathLike[str], video: Video) -> dict[int, dict[int, RleMask]]:
    """{obj_id: {frame: RLE}} from an SA-V JSON file or one video's SA-V evaluation / DAVIS folder,
    checked to fit `video` (frame range and size)."""
    from masklet.io.formats import read_mask_folder, read_sav_json

    path = Path(path)
    if path.is_file():
        gt = read_sav_json(path).to_eval_masks()
    elif path.is_dir():
        gt = read_mask_folder(path)
    else:
        raise MaskletError(
            f"{path}: no such file or folder; ground truth is an SA-V JSON file or a mask folder"
        )
    for obj_id, frames in gt.items():
        for frame, rle in frames.items():
            if not 0 <= frame < video.frame_count or tuple(rle.size) != (video.height, video.width):
                raise MaskletError(
                    f"{path}: object {obj_id}, frame {frame}: a {rle.size[0]}x{rle.size[1]} (h x w) mask does not "
                    f"fit video {video.id} ({video.frame_count} frames of {video.height}x{video.width})"
                )
    return gt


def simulate_annotation(
    store: Store,
    project: ProjectRef,
    video_id: int,
    gt_path: str | os.PathLike[str],
    model: Callable[[], Any],
    *,
    phase: int,
    by: str,
    objects: Sequence[int] | None = None,
    max_clicks: int = 5,
    min_error_px: int = 16,
    stride: int | None = None,
    realign: bool = False,
    submit: bool = False,
) -> list[MaskletWork]:
    """The simulated annotator works a project video against ground truth in `phase` (1, 2 or 3).

    `model` builds the model when called, after every input was checked.
    """
    from masklet.engine.simulate import AnnotatorModel, annotate_video

    video = video_of_project(store, find_project(store, project), video_id)
    gt = read_ground_truth(gt_path, video)
    if objects:
        missing = sorted(set(objects) - set(gt))
        if missing:
            raise MaskletError(f"objects {missing} are not in {gt_path} (it has {sorted(gt)})")
        gt = {o: gt[o] for o in objects}
    annotator = AnnotatorModel(max_clicks=max_clicks, min_error_px=min_error_px)
    return annotate_video(
        store, video.id, gt, model(), phase=phase, by=by, annotator=annotator, stride=stride,
        realign=realign, submit=submit,
    )  # fmt: skip


def auto_masklets_for_video(
    store: Store,
    project: ProjectRef,
    video_id: int,
    model: Callable[[], Any],
    *,
    config: AutoMaskletConfig | None = None,
    frame: int = 0,
    by: str,
) -> AutoResult:
    """SA-V auto masklets for a project video, sent to review (`engine.auto.generate_auto_masklets`).

    `model` builds the model when called, after the video was checked.
    """
    from masklet.engine.auto import AutoMaskletConfig, generate_auto_masklets

    video = video_of_project(store, find_project(store, project), video_id)
    return generate_auto_masklets(
        store, video.id, model(), config=config or AutoMaskletConfig(), frame=frame, by=by
    )


# ------------------------------------------------------------------------------ masklets, masks
def create_video_masklet(
    store: Store,
    project: ProjectRef,
    video_id: int,
    *,
    by: str,
    role: Role | str | None = None,
    obj_id: int | None = None,
    category: str | None = None,
) -> Masklet:
    """A new draft masklet (one object) in a project video; `obj_id` defaults to the next free one."""
    if role is not None:
        require(role, Permission.EDIT, "create masklets")
    video = video_of_project(store, find_project(store, project), video_id)
    return store.create_masklet(video.id, by=by, obj_id=obj_id, category=category)


def describe_masklet(
    store: Store,
    project: ProjectRef,
    masklet_id: int,
    *,
    expected_version: int,
    by: str,
    role: Role | str | None = None,
    **changes: str | None,
) -> Masklet:
    """Rename a project's masklet and/or set its category (`name=`, `category=`; None clears)."""
    unknown = set(changes) - {"name", "category"}
    if unknown:
        raise MaskletError(f"a masklet has a name and a category, not {', '.join(sorted(unknown))}")
    masklet = editable_masklet(store, project, masklet_id, role, "rename masklets or set their category")
    return store.describe_masklet(masklet.id, expected_version=expected_version, by=by, **changes)


def delete_video_masklet(
    store: Store,
    project: ProjectRef,
    masklet_id: int,
    *,
    expected_version: int,
    by: str,
    role: Role | str | None = None,
    workflows: WorkflowRegistry | None = None,
) -> int:
    """Delete a project's masklet that is not accepted, with its masks; returns how many frames it had.

    `workflows` (a server's open workflows) closes the deleted masklet's.
    """
    masklet = editable_masklet(store, project, masklet_id, role, "delete masklets")
    frames = store.delete_masklet(masklet.id, expected_version=expected_version, by=by)
    if workflows is not None:
        workflows.discard(masklet.id)
    return frames


@dataclass(frozen=True, slots=True)
class FrameMasks:
    """Every masklet's saved mask on one frame of a video, by masklet id."""

    frame: int
    masks: Mapping[int, FrameMask]


def frame_masks(store: Store, project: ProjectRef, video_id: int, frame: int) -> FrameMasks:
    video = video_of_project(store, find_project(store, project), video_id)
    if not 0 <= frame < video.frame_count:
        raise MaskletError(
            f"frame {frame} is past the end of video {video.id} (frames 0..{video.frame_count - 1})"
        )
    found = {}
    for masklet in store.list_masklets(video_id=video.id):
        saved = store.get_frame_masks(masklet.id, frames=[frame])
        if saved:
            found[masklet.id] = saved[0]
    return FrameMasks(frame, MappingProxyType(found))


def save_drawn_mask(
    store: Store,
    project: ProjectRef,
    masklet_id: int,
    frame: int,
    rle: Mapping[str, Any],
    *,
    expected_version: int | None,
    by: str,
    role: Role | str | None = None,
    phase: int | None = None,
    seconds: float | None = None,
    workflows: WorkflowRegistry | None = None,
) -> FrameMask:
    """Save a mask drawn by hand (brush, eraser, polygon) on one frame of a project's masklet.

    `expected_version` is the version the annotator started from (None: no mask there yet);
    a stale one raises StaleWriteError and saves nothing. Reviewers may not edit. With
    `workflows` (a server with a model) the mask goes through the annotator's workflow of
    `phase`, so that their next click on the frame builds on it and, in phases 2 and 3, the
    tracking session takes it as the frame's mask prompt.
    """
    from masklet.engine.store_checks import check_version

    masklet = editable_masklet(store, project, masklet_id, role, "edit masks")
    if workflows is None:
        return store.put_frame_mask(
            masklet.id, frame, rle, source=MaskSource.MANUAL, by=by, expected_version=expected_version,
            phase=phase, duration_s=seconds,
        )  # fmt: skip
    current = {m.frame: m.version for m in store.get_frame_masks(masklet.id, frames=[frame])}.get(frame)
    check_version(current, expected_version, f"frame {frame} of masklet {masklet.id}")
    with workflows.workflow(masklet.id, phase=phase or 1, by=by) as work:
        if work.version(frame) != current:
            work.refresh()  # saved elsewhere since this workflow read it
        work.set_mask(frame, rle, seconds=seconds)
    return store.get_frame_mask(masklet.id, frame)


def delete_mask(
    store: Store,
    project: ProjectRef,
    masklet_id: int,
    frame: int,
    *,
    expected_version: int,
    by: str,
    role: Role | str | None = None,
) -> None:
    masklet = editable_masklet(store, project, masklet_id, role, "edit masks")
    store.delete_frame_mask(masklet.id, frame, expected_version=expected_version, by=by)


def prompt_model(
    store: Store,
    workflows: WorkflowRegistry,
    project: ProjectRef,
    masklet_id: int,
    frame: int,
    *,
    phase: int,
    by: str,
    role: Role | str | None = None,
    points: Sequence[Sequence[float]] | None = None,
    labels: Sequence[int] | None = None,
    box: Sequence[float] | None = None,
    clear: bool = False,
    seconds: float | None = None,
) -> FrameMask:
    """Clicks or a box on a frame: the model answers with the frame's new mask, saved at once.

    Clicks add to the frame's earlier ones unless `clear`; a box replaces them. Phases 1 and 2
    ask the image model, Phase 3 the tracking session (see `MaskletWorkflow`).
    """
    from masklet.errors import PromptError

    if role is not None:
        require(role, Permission.EDIT, "edit masks")
    if bool(points) == (box is not None):
        raise PromptError("give clicks (points with labels) or a box, one of the two")
    if points and (labels is None or len(labels) != len(points)):
        raise PromptError(f"{len(points)} points need as many labels (1 adds, 0 removes)")
    masklet = editable_masklet(store, project, masklet_id, role, "edit masks")
    with workflows.workflow(masklet.id, phase=phase, by=by) as work:
        if box is not None:
            work.box(frame, box, clear=True, seconds=seconds)
        else:
            work.click(frame, points or [], labels or [], clear=clear, seconds=seconds)
    return store.get_frame_mask(masklet.id, frame)


@dataclass(frozen=True, slots=True)
class TimelineLane:
    """One masklet's frames with a saved mask, and where each came from (the page's timeline)."""

    masklet: Masklet
    sources: Mapping[int, str]  # frame -> MaskSource


def video_timeline(store: Store, project: ProjectRef, video_id: int) -> list[TimelineLane]:
    video = video_of_project(store, find_project(store, project), video_id)
    return [
        TimelineLane(m, MappingProxyType({f.frame: f.source for f in store.get_frame_masks(m.id)}))
        for m in store.list_masklets(video_id=video.id)
    ]

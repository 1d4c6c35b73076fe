"""The simulated annotator at work in a project: it writes prompts, masks and time into the store.

It clicks by `masklet.eval.interactive.error_click` (the click rule lives in `eval` so that the
evaluation protocols can use it; `engine` sits above `eval`) and times itself with `TimeModel`.
It works through `masklet.engine.phases.MaskletWorkflow`, so everything it does reaches the
store with its `phase` and its time, and `effort_table` reads its work like a person's.
Work on one frame (`work_frame`): locate it (1 s), then error-centre clicks (1.5 s each) until
the mask reaches `target_iou` or the click budget is spent, then one pixel-tool stroke
(`stroke_s`) per remaining error component of at least `min_error_px` pixels.
- Phase 1 (`annotate_phase1`, `simulate_masklet`): every annotated frame is worked on the
  image predictor, up to `max_clicks` clicks.
- Phases 2 and 3 (`simulate_masklet`), online as in the SAM 2 paper: the first annotated frame
  where the object is visible is worked (Phase 2: image predictor; Phase 3: the tracking
  session), the masklet is propagated, the annotator watches it (`TimeModel.examine` per frame
  watched) up to the first annotated frame whose IoU is below `fix_iou`, fixes that frame
  (Phase 2: redrawn with the image tools; Phase 3: up to `refine_clicks` refinement clicks on
  the session, then strokes) and propagates again from it; at most `max_fixed_frames` frames.
- `annotate_video`: one new masklet per ground-truth object, worked in one phase.
- `record_run`: a protocol run of `masklet.eval.interactive` on a tracking session is written
  into the store: its clicks as prompts, its time, and its final masks (`click_model` on
  prompted frames, `propagated` elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from masklet.engine.edits import Edit
from masklet.engine.effort import REALIGNED_FROM, log_time
from masklet.engine.phases import MaskletWorkflow
from masklet.engine.store import Masklet, Store
from masklet.engine.vocabulary import EventAction, MaskSource
from masklet.errors import NotFoundError
from masklet.eval.interactive import ObjectRun, TimeModel, error_click
from masklet.eval.metrics import MaskLike
from masklet.io.frames import open_frame_source
from masklet.io.masks import decode_rle

log = logging.getLogger(__name__)

__all__ = [
    "AnnotatorModel",
    "FrameWork",
    "MaskletWork",
    "annotate_objects_phase1",
    "annotate_phase1",
    "annotate_video",
    "record_run",
    "simulate_masklet",
    "stroke_fixes",
    "work_frame",
]


@dataclass(frozen=True, slots=True)
class AnnotatorModel:
    """How the simulated annotator works and how long each action takes."""

    time: TimeModel = field(default_factory=TimeModel)
    max_clicks: int = 5  # clicks on a frame worked from scratch before the pixel tools take over
    target_iou: float = 0.95  # stop clicking when the model's mask is this good
    stroke_s: float = 5.0  # one brush/eraser stroke (an assumption: the paper gives no figure)
    min_error_px: int = 16  # smaller error components are left alone
    fix_iou: float = 0.75  # phases 2 and 3: a tracked frame below this IoU gets fixed
    max_fixed_frames: int = 8  # phases 2 and 3: frames worked per masklet, the first included
    refine_clicks: int = 3  # Phase 3: refinement clicks on a tracked frame


@dataclass(frozen=True, slots=True)
class FrameWork:
    """What the annotator did on one frame."""

    frame: int
    clicks: int
    strokes: int
    seconds: float
    model_iou: float  # the predictor's mask after the clicks
    final_iou: float  # the saved mask


@dataclass(frozen=True, slots=True)
class MaskletWork:
    """What the annotator did on one masklet in one phase."""

    masklet_id: int
    phase: int
    frames: tuple[FrameWork, ...]  # the frames worked, in order
    examine_s: float  # watching the propagated masklet (phases 2 and 3)

    @property
    def seconds(self) -> float:
        return sum(w.seconds for w in self.frames) + self.examine_s

    @property
    def clicks(self) -> int:
        return sum(w.clicks for w in self.frames)

    @property
    def strokes(self) -> int:
        return sum(w.strokes for w in self.frames)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def _as_mask(mask: MaskLike) -> np.ndarray:
    return np.asarray(mask, dtype=bool) if isinstance(mask, np.ndarray) else decode_rle(mask)


def _row_runs(region: np.ndarray) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """The region as horizontal runs of pixel centres ((x0, y), (x1, y)), row by row."""
    runs = []
    for y in np.flatnonzero(region.any(axis=1)):
        row = np.concatenate([[False], region[y], [False]])
        edges = np.flatnonzero(row[1:] != row[:-1])  # run starts and (exclusive) ends, alternating
        runs += [
            ((float(a), float(y)), (float(b - 1), float(y)))
            for a, b in zip(edges[::2], edges[1::2], strict=True)
        ]
    return runs


def stroke_fixes(mask: np.ndarray, gt: np.ndarray, min_px: int) -> tuple[list[Edit], int]:
    """Pixel-tool edits that fix every error component of at least `min_px` pixels, and how many strokes.

    A component (4-connected, of false negatives and false positives together) is one stroke:
    recorded as thin (radius 0.25) edits, one per row run, brush over its false negatives and
    eraser over its false positives, so that the edits repaint it exactly.
    """
    edits, strokes = [], 0
    components, count = ndimage.label(mask ^ gt)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    for k in range(1, count + 1):
        if sizes[k] >= min_px:
            region = components == k
            edits += [Edit("brush", run, radius=0.25) for run in _row_runs(region & gt)]
            edits += [Edit("eraser", run, radius=0.25) for run in _row_runs(region & ~gt)]
            strokes += 1
    return edits, strokes


def work_frame(
    work: MaskletWorkflow, frame: int, gt: np.ndarray, *, model: AnnotatorModel, max_clicks: int
) -> FrameWork:
    """Locate the frame, click at error centres, then fix what is left with the pixel tools.

    Phases 1 and 2 click on the image predictor from scratch; Phase 3 clicks on the tracking
    session from the frame's current mask (refinement clicks on a tracked frame).
    """
    time = model.time
    work.log_time(EventAction.TIME_LOCATE, time.locate_s, frame=frame)
    refine = work.phase == 3
    mask = work.mask(frame) if refine else np.zeros_like(gt)
    clicks = 0
    while clicks < max_clicks and _iou(mask, gt) < model.target_iou:
        click = error_click(mask, gt)
        if click is None:
            break
        mask = work.click(
            frame, [[click.x, click.y]], [click.label], clear=clicks == 0 and not refine, seconds=time.click_s
        )
        clicks += 1
    edits, strokes = stroke_fixes(mask, gt, model.min_error_px)
    fixed = work.edit(frame, edits, seconds=strokes * model.stroke_s) if strokes else mask
    spent = time.locate_s + clicks * time.click_s + strokes * model.stroke_s
    return FrameWork(frame, clicks, strokes, spent, _iou(mask, gt), _iou(fixed, gt))


def annotate_phase1(
    store: Store,
    masklet_id: int,
    gt: Mapping[int, MaskLike],
    frames: Any,
    predictor: Any,
    *,
    by: str = "simulated",
    model: AnnotatorModel = AnnotatorModel(),  # noqa: B008 - frozen, so one shared default is safe
) -> tuple[FrameWork, ...]:
    """Annotate a masklet on the frames of `gt` ({frame: mask}), Phase-1 style.

    `frames` is anything `open_frame_source` takes (a video path, a frame folder, a list of
    (H, W, 3) arrays); `predictor` an `ImagePredictor`. Each action commits on its own, so
    an interrupted run keeps the frames it finished.
    """
    with MaskletWorkflow(
        store, masklet_id, phase=1, by=by, frames=frames, image_predictor=predictor, stride=1
    ) as work:
        return tuple(
            work_frame(work, f, _as_mask(gt[f]), model=model, max_clicks=model.max_clicks) for f in sorted(gt)
        )


def _iou_now(work: MaskletWorkflow, frames: list[int], targets: Mapping[int, np.ndarray]) -> dict[int, float]:
    saved = {m.frame: m for m in work.store.get_frame_masks(work.masklet.id, frames=frames)}
    return {
        f: _iou(decode_rle(saved[f].rle), targets[f])
        if f in saved
        else _iou(np.zeros_like(targets[f]), targets[f])
        for f in frames
    }


def _track_and_fix(
    work: MaskletWorkflow, targets: Mapping[int, np.ndarray], first: int, model: AnnotatorModel
) -> tuple[list[FrameWork], float]:
    """Phases 2 and 3 after the first frame: propagate, watch, fix the first bad frame, repeat.

    Returns the frames fixed and the watching time.
    """
    fixes: list[FrameWork] = []
    examine, cursor = 0.0, first
    while True:
        for _ in work.propagate(start=cursor):
            pass
        if cursor == first and first > 0:  # the object appeared late: back to the start once
            for _ in work.propagate(start=first, reverse=True):
                pass
        later = [f for f in targets if f > cursor]
        ious = _iou_now(work, later, targets)
        bad = next((f for f in later if ious[f] < model.fix_iou), None)
        seen_from = 0 if cursor == first else cursor
        watched = (bad if bad is not None else work.video.frame_count - 1) - seen_from + 1
        seconds = model.time.examine(watched)
        work.log_time(EventAction.TIME_EXAMINE, seconds, payload={"frames": watched})
        examine += seconds
        if bad is None or 1 + len(fixes) >= model.max_fixed_frames:
            return fixes, examine
        fixes.append(work_frame(work, bad, targets[bad], model=model, max_clicks=model.refine_clicks))
        cursor = bad


def simulate_masklet(
    work: MaskletWorkflow,
    gt: Mapping[int, MaskLike],
    *,
    model: AnnotatorModel = AnnotatorModel(),  # noqa: B008 - frozen, so one shared default is safe
) -> MaskletWork:
    """Annotate `work`'s masklet against `gt` ({frame: mask}) in the workflow's phase (see the module doc).

    Only the annotated frames (the workflow's stride) that `gt` has are worked and scored.
    """
    targets = {f: _as_mask(gt[f]) for f in work.annotated_frames if f in gt}
    if work.phase == 1:
        done = [work_frame(work, f, t, model=model, max_clicks=model.max_clicks) for f, t in targets.items()]
        return MaskletWork(work.masklet.id, 1, tuple(done), 0.0)
    first = next((f for f, t in targets.items() if t.any()), None)
    if first is None:
        log.info("masklet %d: the object is not visible on any annotated frame", work.masklet.id)
        return MaskletWork(work.masklet.id, work.phase, (), 0.0)
    start = work_frame(work, first, targets[first], model=model, max_clicks=model.max_clicks)
    fixes, examine = _track_and_fix(work, targets, first, model)
    return MaskletWork(work.masklet.id, work.phase, (start, *fixes), examine)


def _new_masklet(
    store: Store, video_id: int, obj_id: int, *, by: str, phase: int, meta: dict[str, Any]
) -> Masklet:
    """A masklet with `obj_id` if the video has none yet, else with the next free id."""
    taken = {m.obj_id for m in store.list_masklets(video_id=video_id)}
    wanted = int(obj_id) if int(obj_id) not in taken else None
    return store.create_masklet(video_id, by=by, obj_id=wanted, phase=phase, meta=meta)


def annotate_video(
    store: Store,
    video_id: int,
    gt: Mapping[int, Mapping[int, MaskLike]],
    model: Any,
    *,
    phase: int,
    frames: Any = None,
    by: str = "simulated",
    annotator: AnnotatorModel = AnnotatorModel(),  # noqa: B008
    stride: int | None = None,
    realign: bool = False,
    submit: bool = False,
) -> list[MaskletWork]:
    """One new masklet per object of `gt` ({obj_id: {frame: mask}}), annotated in `phase`.

    `model` is a `SAM2Model`; `frames` defaults to the video's path. The object id is kept
    when free on the video (meta `simulated.gt_obj_id` names it either way). `realign` adds a
    Phase-1 re-annotation of each masklet (meta `realigned_from`, for the effort table's
    alignment row); `submit` sends each masklet (not the re-annotations) to review.
    """
    from masklet.predict.image import ImagePredictor
    from masklet.predict.video import VideoPredictor

    video = store.get_video(video_id)
    if not gt:
        raise NotFoundError(f"no objects in the ground truth for video {video.id}")
    image, tracker = ImagePredictor(model), VideoPredictor(model)
    out = []
    with open_frame_source(video.path if frames is None else frames) as source:

        def run(masklet: Masklet, in_phase: int, target: Mapping[int, MaskLike], send: bool) -> MaskletWork:
            with MaskletWorkflow(
                store, masklet.id, phase=in_phase, by=by, frames=source, image_predictor=image,
                video_predictor=tracker, stride=stride,
            ) as work:  # fmt: skip
                done = simulate_masklet(work, target, model=annotator)
                if send:
                    work.submit()
                return done

        for obj_id in sorted(gt):
            meta = {"simulated": {"gt_obj_id": int(obj_id)}}
            masklet = _new_masklet(store, video_id, obj_id, by=by, phase=phase, meta=meta)
            out.append(run(masklet, phase, gt[obj_id], submit))
            if realign:
                check = _new_masklet(store, video_id, obj_id, by=by, phase=1,
                                     meta={**meta, REALIGNED_FROM: masklet.id})  # fmt: skip
                run(check, 1, gt[obj_id], False)  # a check, not for review
    return out


def annotate_objects_phase1(
    store: Store,
    video_id: int,
    gt: Mapping[int, Mapping[int, MaskLike]],
    frames: Any,
    predictor: Any,
    *,
    by: str = "simulated",
    model: AnnotatorModel = AnnotatorModel(),  # noqa: B008
) -> list[tuple[Masklet, tuple[FrameWork, ...]]]:
    """One new Phase-1 masklet per object of `gt` ({obj_id: {frame: mask}}), annotated."""
    out = []
    for obj_id in sorted(gt):
        masklet = store.create_masklet(video_id, by=by, obj_id=int(obj_id), phase=1)
        out.append(
            (masklet, annotate_phase1(store, masklet.id, gt[obj_id], frames, predictor, by=by, model=model))
        )
    return out


def record_run(
    store: Store,
    masklet_id: int,
    run: ObjectRun,
    *,
    phase: int,
    by: str = "simulated",
    time: TimeModel = TimeModel(),  # noqa: B008
) -> None:
    """Write a protocol run (its clicks, its time and its final masks) into the store, in one transaction.

    `time` must be the model the run was made with: watching time is what the run's last curve
    point spent beyond its locating and clicks.
    """
    if not run.curve:
        return
    total, clicks = run.curve[-1].seconds, run.curve[-1].clicks
    with store.transaction():
        for frame in run.prompted:
            log_time(
                store,
                EventAction.TIME_LOCATE,
                time.locate_s,
                by=by,
                phase=phase,
                masklet_id=masklet_id,
                frame=frame,
            )
        for step in run.steps:
            payload = {"points": [[step.click.x, step.click.y]], "labels": [step.click.label]}
            store.add_prompt(masklet_id, step.frame, "click", payload, by=by, phase=phase)
            log_time(
                store,
                EventAction.TIME_CLICK,
                time.click_s,
                by=by,
                phase=phase,
                masklet_id=masklet_id,
                frame=step.frame,
            )
        watching = total - len(run.prompted) * time.locate_s - clicks * time.click_s
        if watching > 1e-9:
            log_time(store, EventAction.TIME_EXAMINE, watching, by=by, phase=phase, masklet_id=masklet_id)
        versions = {fm.frame: fm.version for fm in store.get_frame_masks(masklet_id)}
        for source, frames in (
            (MaskSource.CLICK_MODEL, [f for f in run.masks if f in run.prompted]),
            (MaskSource.PROPAGATED, [f for f in run.masks if f not in run.prompted]),
        ):
            if frames:
                store.put_frame_masks(
                    masklet_id, {f: run.masks[f].to_dict() for f in frames}, source=source, by=by, phase=phase,
                    expected_versions={f: versions[f] for f in frames if f in versions},
                )  # fmt: skip

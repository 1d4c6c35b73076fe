"""The simulated annotator at work in a project: it writes prompts, masks and time into the store.

It clicks by `masklet.eval.interactive.error_click` (the click rule lives in `eval` so that the
evaluation protocols can use it; `engine` sits above `eval`) and times itself with `TimeModel`.
Everything it does goes through the store with its `phase`, and its time through `log_time`,
so `effort_table` reads its work like a person's (see `masklet.engine.effort`).
- Phase 1 (`annotate_phase1`): per annotated frame, locate the object (1 s), then up to
  `max_clicks` error-centre clicks on the image predictor (1.5 s each; each click refines the
  last mask, multimask on the first), stopping once IoU reaches `target_iou`; the mask is saved
  (`click_model`); then every remaining error component of at least `min_error_px` pixels is
  fixed with one pixel-tool stroke (`stroke_s` each), and the result saved (`manual`).
- Phases 2 and 3 (`record_run`): a protocol run of `masklet.eval.interactive` on a tracking
  session is written into the store: its clicks as prompts, its time, and its final masks
  (`click_model` on prompted frames, `propagated` elsewhere).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from masklet.engine.effort import log_time
from masklet.engine.store import Masklet, Store
from masklet.eval.interactive import ObjectRun, TimeModel, error_click
from masklet.eval.metrics import MaskLike
from masklet.io.frames import open_frame_source
from masklet.io.masks import decode_rle, encode_rle

log = logging.getLogger(__name__)

__all__ = ["AnnotatorModel", "FrameWork", "annotate_objects_phase1", "annotate_phase1", "record_run"]


@dataclass(frozen=True, slots=True)
class AnnotatorModel:
    """How the simulated annotator works and how long each action takes."""

    time: TimeModel = field(default_factory=TimeModel)
    max_clicks: int = 5  # Phase-1 clicks on one frame before the pixel tools take over
    target_iou: float = 0.95  # stop clicking when the model's mask is this good
    stroke_s: float = 5.0  # one brush/eraser stroke (an assumption: the paper gives no figure)
    min_error_px: int = 16  # smaller error components are left alone


@dataclass(frozen=True, slots=True)
class FrameWork:
    """What the annotator did on one frame."""

    frame: int
    clicks: int
    strokes: int
    seconds: float
    model_iou: float  # the image predictor's mask after the clicks
    final_iou: float  # the saved mask


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def _click_frame(
    store: Store,
    masklet_id: int,
    frame: int,
    gt: np.ndarray,
    predictor: Any,
    *,
    by: str,
    model: AnnotatorModel,
) -> tuple[np.ndarray, int]:
    """Error-centre clicks on the image predictor; returns its last mask and the number of clicks."""
    mask = np.zeros_like(gt)
    points: list[list[int]] = []
    labels: list[int] = []
    low_res = None
    while len(points) < model.max_clicks and _iou(mask, gt) < model.target_iou:
        click = error_click(mask, gt)
        if click is None:
            break
        points.append([click.x, click.y])
        labels.append(click.label)
        masks, scores, logits = predictor.predict(
            point_coords=np.asarray(points, dtype=np.float32),
            point_labels=np.asarray(labels, dtype=np.int32),
            mask_input=low_res,
            multimask_output=len(points) == 1,
        )
        best = int(np.argmax(scores))
        mask, low_res = np.asarray(masks[best], dtype=bool), logits[best][None]  # (1, 4h, 4w)
        payload = {"points": [[click.x, click.y]], "labels": [click.label]}
        store.add_prompt(masklet_id, frame, "click", payload, by=by, phase=1)
        log_time(store, "time.click", model.time.click_s, by=by, phase=1, masklet_id=masklet_id, frame=frame)
    return mask, len(points)


def _stroke_fix(mask: np.ndarray, gt: np.ndarray, min_px: int) -> tuple[np.ndarray, int]:
    """Fix every error component of at least `min_px` pixels, one stroke each."""
    out, strokes = mask.copy(), 0
    components, count = ndimage.label(mask ^ gt)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    for k in range(1, count + 1):
        if sizes[k] >= min_px:
            region = components == k
            out[region] = gt[region]
            strokes += 1
    return out, strokes


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
    (H, W, 3) arrays); `predictor` an `ImagePredictor`. Each store call commits on its own, so
    an interrupted run keeps the frames it finished.
    """
    done = []
    with open_frame_source(frames) as source:
        for frame in sorted(gt):
            target = (
                np.asarray(gt[frame], dtype=bool)
                if isinstance(gt[frame], np.ndarray)
                else decode_rle(gt[frame])
            )
            log_time(
                store, "time.locate", model.time.locate_s, by=by, phase=1, masklet_id=masklet_id, frame=frame
            )
            predictor.set_image(source.get(frame))
            mask, clicks = _click_frame(store, masklet_id, frame, target, predictor, by=by, model=model)
            versions = {fm.frame: fm.version for fm in store.get_frame_masks(masklet_id, frames=[frame])}
            saved = store.put_frame_mask(masklet_id, frame, encode_rle(mask), source="click_model", by=by,
                                         expected_version=versions.get(frame), phase=1)  # fmt: skip
            fixed, strokes = _stroke_fix(mask, target, model.min_error_px)
            if strokes:
                seconds = strokes * model.stroke_s
                log_time(store, "time.edit", seconds, by=by, phase=1, masklet_id=masklet_id, frame=frame,
                         payload={"strokes": strokes})  # fmt: skip
                store.put_frame_mask(masklet_id, frame, encode_rle(fixed), source="manual", by=by,
                                     expected_version=saved.version, phase=1)  # fmt: skip
            spent = model.time.locate_s + clicks * model.time.click_s + strokes * model.stroke_s
            done.append(FrameWork(frame, clicks, strokes, spent, _iou(mask, target), _iou(fixed, target)))
    return tuple(done)


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
                store, "time.locate", time.locate_s, by=by, phase=phase, masklet_id=masklet_id, frame=frame
            )
        for step in run.steps:
            payload = {"points": [[step.click.x, step.click.y]], "labels": [step.click.label]}
            store.add_prompt(masklet_id, step.frame, "click", payload, by=by, phase=phase)
            log_time(
                store, "time.click", time.click_s, by=by, phase=phase, masklet_id=masklet_id, frame=step.frame
            )
        watching = total - len(run.prompted) * time.locate_s - clicks * time.click_s
        if watching > 1e-9:
            log_time(store, "time.examine", watching, by=by, phase=phase, masklet_id=masklet_id)
        versions = {fm.frame: fm.version for fm in store.get_frame_masks(masklet_id)}
        for source, frames in (
            ("click_model", [f for f in run.masks if f in run.prompted]),
            ("propagated", [f for f in run.masks if f not in run.prompted]),
        ):
            if frames:
                store.put_frame_masks(
                    masklet_id, {f: run.masks[f].to_dict() for f in frames}, source=source, by=by, phase=phase,
                    expected_versions={f: versions[f] for f in frames if f in versions},
                )  # fmt: skip

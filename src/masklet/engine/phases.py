"""The data engine's three annotation workflows over one masklet of one video (SAM 2 paper, section 5).

    with MaskletWorkflow(store, masklet.id, phase=3, model=model, by="ann") as work:
        work.click(0, [[40, 30]], [1], seconds=1.5)    # prompt + mask: one transaction
        for saved in work.propagate():                # one transaction per saved frame
            ...

- Phase 1 (SAM per frame, then pixel editing): `click`/`box` go to the image predictor (clicks
  on a frame add up and refine its last mask), `edit` applies brush/eraser/polygon `Edit`s to
  the frame's saved mask, `set_mask` replaces it. No propagation.
- Phase 2 (SAM + SAM 2 Mask): the same image tools make a frame's mask; `propagate` hands the
  annotator's frames to the video model as mask prompts only and tracks from there. A frame is
  fixed by redrawing it (the same tools), then `propagate(start=frame)` reruns from it.
- Phase 3 (full SAM 2): `click`/`box` go to the tracking session, on any annotated frame
  (refinement clicks included); `edit`/`set_mask` become mask prompts; `propagate`.
Only every `stride`-th frame is annotated (default round(fps / 6), SA-V's 6 fps); the session
tracks only those frames unless `track_all_frames`. Saves: click/box -> source `click_model`,
edit/set_mask -> `manual`, propagate -> `propagated`, never over an annotator's frame
(`manual`/`click_model`): those are the session's prompts. Every event names the phase;
`seconds=` (annotator time) rides on the action's own event (`prompt.add`, or `mask.put` of an
edit, whose `mask.edit` event keeps the tools used), see `masklet.engine.effort`. In phases 2
and 3, edit/set_mask also log a `mask` prompt. The session starts at the first propagation (or
Phase-3 prompt), seeded with the masklet's annotator frames as mask prompts, so a workflow
resumes work saved earlier (e.g. Phase 2 over a Phase-1 first frame); if the store refuses a
write after the session took a prompt, the session is dropped and re-seeded on next use.
"""

from __future__ import annotations

import logging
import operator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import numpy as np

from masklet.engine.edits import Edit, apply_edits
from masklet.engine.effort import EDIT_SOURCES, log_time
from masklet.engine.store import Event, FrameMask, InvalidEditError, Masklet, Store
from masklet.engine.video_frames import (
    ANNOTATION_FPS,
    EveryNthFrame,
    annotation_stride,
    check_frames_match,
    frame_stride,
)
from masklet.engine.vocabulary import EventAction, MaskSource
from masklet.errors import SessionError
from masklet.io.frame_source import FrameSource
from masklet.io.frames import open_frame_source
from masklet.io.masks import RleLike, decode_rle, encode_rle, validate_rle

log = logging.getLogger(__name__)

__all__ = ["ANNOTATION_FPS", "PHASES", "EveryNthFrame", "MaskletWorkflow", "frame_stride"]

PHASES = (1, 2, 3)


@dataclass(slots=True)
class _FramePrompt:
    """A frame's clicks and box so far, and (image predictor) the chosen mask's low-res logits."""

    points: list[list[float]]
    labels: list[int]
    box: list[float] | None = None
    low_res: np.ndarray | None = None  # (1, 256, 256) logits of the chosen mask


class MaskletWorkflow:
    """One annotator working one masklet in one phase (1, 2 or 3); close it, or use `with`.

    model: a `SAM2Model` (or pass `image_predictor` / `video_predictor`, which bring theirs).
    frames: anything `open_frame_source` takes; default the video's path from the store.
    It must match the video's size and frame count.
    fast: the tracking session in fast mode (`VideoPredictor(fast=True)`; a `video_predictor`
    given brings its own).
    """

    def __init__(
        self,
        store: Store,
        masklet_id: int,
        *,
        phase: int,
        by: str,
        model: Any = None,
        frames: Any = None,
        image_predictor: Any = None,
        video_predictor: Any = None,
        stride: int | None = None,
        track_all_frames: bool = False,
        feature_cache: Any = None,
        fast: bool = False,
    ) -> None:
        if phase not in PHASES:
            raise InvalidEditError(f"phase must be 1, 2 or 3, got {phase!r}")
        self.store, self.phase, self.by = store, phase, by
        self.masklet: Masklet = store.get_masklet(masklet_id)
        self.video = store.get_video(self.masklet.video_id)
        self.stride = annotation_stride(self.video, stride)
        self.track_all_frames = track_all_frames
        self._feature_cache = feature_cache  # a predict.FeatureCache shared with other workflows
        self._fast = fast  # the tracking session's mode (VideoPredictor(fast=...)), when it makes one
        owners = (model, getattr(image_predictor, "model", None), getattr(video_predictor, "model", None))
        self._model = next((m for m in owners if m is not None), None)
        if self._model is None:
            raise SessionError("MaskletWorkflow needs a model (or an image/video predictor) to annotate with")
        self._image, self._video = image_predictor, video_predictor
        self._image_frame: int | None = None
        self._frame_prompts: dict[int, _FramePrompt] = {}
        self._session: Any = None
        self._dirty: set[int] = set()  # annotator frames the session has not been given yet
        self._owns_frames = not isinstance(frames, FrameSource)
        self._frames = open_frame_source(self.video.path if frames is None else frames)
        # frames read from the video's file are named in a shared feature cache by its digest
        self._cache_name = self.video.content_hash if frames is None else None
        try:
            check_frames_match(self.video, self._frames)
        except BaseException:
            self.close()
            raise
        self.refresh()

    def refresh(self) -> None:
        """Re-read the masklet's saved masks, e.g. after a `StaleWriteError` (another writer's change).

        The tracking session, if any, is dropped; the next one is seeded from the store.
        """
        saved = self.store.get_frame_masks(self.masklet.id)
        self._versions = {m.frame: m.version for m in saved}
        self._sources = {m.frame: m.source for m in saved}
        self._drop_session()

    # ---- frames --------------------------------------------------------------------------
    @property
    def annotated_frames(self) -> range:
        """The frames this workflow annotates: 0, stride, 2 * stride, ..."""
        return range(0, self.video.frame_count, self.stride)

    def version(self, frame: int) -> int | None:
        """The version of the frame's mask this workflow last read or saved (None: no mask)."""
        return self._versions.get(frame)

    def annotator_frames(self) -> list[int]:
        """Frames whose saved mask an annotator made (clicks, box or drawing): the prompts."""
        return sorted(f for f, source in self._sources.items() if source in EDIT_SOURCES)

    def frames_to_propagate(self, start: int | None = None, *, reverse: bool = False) -> list[int]:
        """The frames `propagate(start, reverse=...)` saves, in order (annotator frames are kept)."""
        prompts = self.annotator_frames()
        if not prompts:
            return []
        first = prompts[0] if start is None else self._check_frame(start)
        kept = set(prompts)
        frames = (
            range(first, -1, -self.stride) if reverse else range(first, self.video.frame_count, self.stride)
        )
        return [f for f in frames if f not in kept]

    def _check_frame(self, frame: Any) -> int:
        try:
            index = -1 if isinstance(frame, bool) else operator.index(frame)  # numpy ints welcome, floats not
        except TypeError:
            index = -1
        if not 0 <= index < self.video.frame_count:
            raise InvalidEditError(
                f"frame {frame!r} is outside video {self.video.id}, which has frames 0..{self.video.frame_count - 1}"
            )
        if index % self.stride:
            raise InvalidEditError(
                f"frame {index} is not an annotated frame: this workflow annotates every {self.stride}th frame "
                f"(0, {self.stride}, {2 * self.stride}, ...); pick one of those or open it with stride=1"
            )
        return index

    def mask(self, frame: int) -> np.ndarray:
        """The frame's saved (H, W) bool mask; all False where none is saved."""
        frame = self._check_frame(frame)
        saved = self.store.get_frame_masks(self.masklet.id, frames=[frame])
        if not saved:
            return np.zeros((self.video.height, self.video.width), dtype=bool)
        return decode_rle(saved[0].rle)

    def _as_mask(self, mask: np.ndarray | RleLike, what: str) -> np.ndarray:
        size = (self.video.height, self.video.width)
        if isinstance(mask, np.ndarray):
            if mask.shape != size:
                raise InvalidEditError(
                    f"{what} is {mask.shape} but video {self.video.id} frames are {size} (H, W); "
                    "give the mask at the video's resolution"
                )
            return mask.astype(bool)
        return decode_rle(validate_rle(mask, expected_size=size, where=what))

    # ---- writes ---------------------------------------------------------------------------
    def _put(self, frame: int, mask: np.ndarray, source: str, seconds: float | None) -> FrameMask:
        return self.store.put_frame_mask(
            self.masklet.id, frame, encode_rle(mask), source=source, by=self.by,
            expected_version=self._versions.get(frame), phase=self.phase, duration_s=seconds,
        )  # fmt: skip

    def _saved(self, saved: FrameMask) -> None:
        """Remember a committed mask's version (call after the transaction commits)."""
        self._versions[saved.frame], self._sources[saved.frame] = saved.version, saved.source

    def _prompt(self, frame: int, kind: str, payload: Mapping[str, Any], seconds: float | None) -> None:
        self.store.add_prompt(
            self.masklet.id, frame, kind, payload, by=self.by, phase=self.phase, duration_s=seconds
        )

    def log_time(
        self,
        action: str,
        seconds: float,
        *,
        frame: int | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> Event:
        """Log annotator time (`time.locate`, `time.examine`, ...) on this masklet, in this phase."""
        return log_time(
            self.store, action, seconds, by=self.by, phase=self.phase, masklet_id=self.masklet.id,
            frame=frame, payload=payload,
        )  # fmt: skip

    # ---- annotator actions ------------------------------------------------------------------
    def click(
        self, frame: int, points: Sequence[Sequence[float]], labels: Sequence[int], *,
        clear: bool = False, seconds: float | None = None,
    ) -> np.ndarray:  # fmt: skip
        """Clicks (video pixels; label 1 adds, 0 removes) on a frame; returns and saves its new mask.

        They add to the frame's earlier clicks unless `clear`. Phases 1 and 2: the image
        predictor; Phase 3: the tracking session.
        """
        frame = self._check_frame(frame)
        payload = {"points": [[float(x), float(y)] for x, y in points], "labels": [int(v) for v in labels]}
        return self._model_prompt(frame, "click", payload, seconds, clear=clear)

    def box(
        self, frame: int, box: Sequence[float], *, clear: bool = True, seconds: float | None = None
    ) -> np.ndarray:
        """A box [x0, y0, x1, y1] (video pixels) on a frame; returns and saves its new mask.

        With `clear` (the default) it replaces the frame's clicks and box, else it joins the clicks.
        """
        frame = self._check_frame(frame)
        payload = {"box": [float(v) for v in box]}
        return self._model_prompt(frame, "box", payload, seconds, clear=clear)

    def edit(
        self, frame: int, edits: Sequence[Edit | Mapping[str, Any]], *, seconds: float | None = None
    ) -> np.ndarray:
        """Apply pixel-tool edits to the frame's saved mask and save the result (source `manual`)."""
        frame = self._check_frame(frame)
        tools = [e if isinstance(e, Edit) else Edit.from_payload(e) for e in edits]
        if not tools:
            raise InvalidEditError("edit() needs at least one Edit (brush, eraser, polygon or polygon_erase)")
        mask = apply_edits(self.mask(frame), tools)
        detail = {"edits": [t.to_payload() for t in tools]}
        return self._manual_mask(frame, mask, seconds, detail)

    def set_mask(self, frame: int, mask: np.ndarray | RleLike, *, seconds: float | None = None) -> np.ndarray:
        """Replace the frame's mask with a drawn one ((H, W) array or COCO RLE at video size); source `manual`."""
        frame = self._check_frame(frame)
        return self._manual_mask(frame, self._as_mask(mask, f"the mask for frame {frame}"), seconds, None)

    def _manual_mask(
        self, frame: int, mask: np.ndarray, seconds: float | None, detail: Mapping[str, Any] | None
    ) -> np.ndarray:
        with self.store.transaction():
            saved = self._put(frame, mask, MaskSource.MANUAL, seconds)
            if detail is not None:
                self.store.log_event(EventAction.MASK_EDIT, by=self.by, masklet_id=self.masklet.id, frame=frame,
                                     phase=self.phase, payload=detail)  # fmt: skip
            if self.phase > 1:  # the video model gets it as a mask prompt
                self._prompt(frame, "mask", {"rle": encode_rle(mask)}, None)
        self._saved(saved)
        if self.phase > 1:
            self._dirty.add(frame)
        return mask

    def _model_prompt(
        self, frame: int, kind: str, payload: Mapping[str, Any], seconds: float | None, *, clear: bool
    ) -> np.ndarray:
        """The frame's clicks and box so far plus the new ones, to the model; saved with the prompt."""
        if self.phase == 3:
            self._ready_session()  # first: feeding it a frame's mask forgets that frame's clicks
        old = self._frame_prompts.get(frame)
        state = _FramePrompt([], []) if old is None or clear else old
        points, labels, box = list(state.points), list(state.labels), state.box
        if kind == "click":
            points += payload["points"]
            labels += payload["labels"]
        else:
            box = payload["box"]
        if self.phase == 3:
            mask, low_res = self._session_predict(frame, points, labels, box), None
        else:
            mask, low_res = self._image_predict(frame, points, labels, box, state.low_res)
        try:
            with self.store.transaction():
                self._prompt(frame, kind, payload, seconds)
                saved = self._put(frame, mask, MaskSource.CLICK_MODEL, None)
        except BaseException:
            if self.phase == 3:
                self._drop_session()  # it holds a prompt the store refused
            raise
        self._saved(saved)
        self._frame_prompts[frame] = _FramePrompt(points, labels, box, low_res)
        if self.phase == 2:
            self._dirty.add(frame)
        return mask

    def _image_predict(
        self, frame: int, points: list[list[float]], labels: list[int], box: list[float] | None, low_res: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        predictor = self._image_predictor()
        if self._image_frame != frame:
            key = None if self._cache_name is None else (self._cache_name, frame)
            predictor.set_image(self._frames.get(frame), cache_key=key)
            self._image_frame = frame
        masks, scores, logits = predictor.predict(
            point_coords=np.asarray(points, dtype=np.float32) if points else None,
            point_labels=np.asarray(labels, dtype=np.int32) if points else None,
            box=None if box is None else np.asarray(box, dtype=np.float32),
            mask_input=low_res,
            multimask_output=len(points) == 1 and box is None,
        )
        best = int(np.argmax(scores))
        return np.asarray(masks[best], dtype=bool), logits[best][None]  # (H, W), (1, 256, 256)

    def _session_predict(
        self, frame: int, points: list[list[float]], labels: list[int], box: list[float] | None
    ) -> np.ndarray:
        # the frame's whole prompt each time (box first, then every click): the same model input
        # as adding clicks one by one, and the session's own click list cannot drift from ours
        obj_ids, logits = self._ready_session().add_prompt(
            frame=self._to_session(frame), obj_id=self.masklet.obj_id, points=points or None,
            labels=labels or None, box=box, clear=True,
        )  # fmt: skip
        return self._mask_of(obj_ids, logits)

    # ---- propagation ------------------------------------------------------------------------
    def propagate(self, start: int | None = None, *, reverse: bool = False) -> Iterator[FrameMask]:
        """Track the masklet from `start` (default: its first annotator frame); yields each saved mask.

        Phases 2 and 3. Each annotated frame is committed on its own as it is tracked, so an
        interruption keeps the frames before it; annotator frames are left as they are.
        Iterate the result (e.g. `list(work.propagate())`): nothing happens until then.
        """
        if self.phase == 1:
            raise SessionError("Phase 1 annotates frame by frame; propagation belongs to phases 2 and 3")
        first = None if start is None else self._to_session(self._check_frame(start))
        session = self._ready_session()
        if not session.obj_ids:
            raise SessionError(
                f"masklet {self.masklet.id} has no annotated frame to propagate from: "
                "click, box, edit or set_mask a frame first"
            )
        return self._propagate(session, first, reverse)

    def _propagate(self, session: Any, first: int | None, reverse: bool) -> Iterator[FrameMask]:
        from masklet.predict.track_runner import track_masks

        step = 1 if self.track_all_frames else self.stride
        for out in track_masks(session, first, reverse=reverse, frame_step=step):
            frame = out.frame
            if frame % self.stride or self._sources.get(frame) in EDIT_SOURCES:
                continue
            saved = self._put(frame, out.mask(self.masklet.obj_id), MaskSource.PROPAGATED, None)
            self._saved(saved)
            yield saved

    # ---- the tracking session ---------------------------------------------------------------
    def _to_session(self, frame: int) -> int:
        return frame if self.track_all_frames else frame // self.stride

    def _mask_of(self, obj_ids: Sequence[int], logits: Any) -> np.ndarray:
        index = list(obj_ids).index(self.masklet.obj_id)
        return (logits[index] > 0).cpu().numpy()

    def _image_predictor(self) -> Any:
        if self._image is None:
            from masklet.predict.image import ImagePredictor

            self._image = ImagePredictor(self._model, feature_cache=self._feature_cache)
        return self._image

    def _ready_session(self) -> Any:
        """The tracking session, started and seeded if needed, with every annotator frame given to it."""
        if self._session is None:
            if self._video is None:
                from masklet.predict.video import VideoPredictor

                self._video = VideoPredictor(self._model, fast=self._fast)
            source = (
                self._frames
                if self.track_all_frames or self.stride == 1
                else EveryNthFrame(self._frames, self.stride)
            )
            self._session = self._video.start(source)
            self._dirty = {f for f, s in self._sources.items() if s in EDIT_SOURCES and f % self.stride == 0}
        try:
            for frame in sorted(self._dirty):
                self._session.add_prompt(
                    frame=self._to_session(frame), obj_id=self.masklet.obj_id, mask=self.mask(frame)
                )
                self._dirty.discard(frame)
                if self.phase == 3:
                    self._frame_prompts.pop(frame, None)  # a mask prompt replaces the frame's clicks
        except BaseException:
            self._drop_session()  # half seeded: start over next time
            raise
        return self._session

    def _drop_session(self) -> None:
        if self._session is not None:
            self._session.close()
            self._session = None
            if self.phase == 3:
                self._frame_prompts.clear()  # the next session is seeded with masks only

    # ---- lifetime ---------------------------------------------------------------------------
    def submit(self) -> Masklet:
        """Send the masklet to review (draft or rejected -> in_review)."""
        current = self.store.get_masklet(self.masklet.id)
        self.masklet = self.store.set_masklet_status(
            current.id, "in_review", expected_version=current.version, by=self.by, phase=self.phase
        )
        return self.masklet

    def close(self) -> None:
        """Release the tracking session and the frames (when this workflow opened them)."""
        self._drop_session()
        if self._owns_frames:
            self._frames.close()

    def __enter__(self) -> MaskletWorkflow:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

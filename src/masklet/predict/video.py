"""`VideoPredictor` and `TrackingSession`: prompt objects on any frame, track them through a video.

    video = VideoPredictor(model)
    with video.start("clip.mp4") as session:      # mp4/webm/mov, frame folder, arrays, live iterator
        obj_ids, logits = session.add_prompt(frame=0, obj_id=1, points=[[x, y]], labels=[1])
        for frame, obj_ids, logits in session.propagate():
            ...                                   # logits: (N, H, W) float32 at video resolution

Semantics are the official `SAM2VideoPredictor`'s (sam2 1.1.0), with these choices:

- A click or mask on a frame that was already tracked makes it a conditioning
  frame (`add_all_frames_to_correct_as_cond=True`), so corrections survive the
  next propagation. Pass `add_all_frames_to_correct_as_cond=False` for the
  official default, where the next propagation overwrites them.
- Small holes (`fill_hole_area`, 8 px of the low-res mask) are filled on every
  device, as the official code does only where its CUDA extension is built.
- Live iterators are tracked as they yield. Their length is unknown, so the
  object pointers' temporal encoding is normalised by `max_obj_ptrs_in_encoder - 1`
  (15): the same as the official predictor for videos of 16 frames or more; on
  shorter clips the official divides by `num_frames - 1` instead.
- Memory stays bounded: frames are decoded and encoded on demand (a few image
  features cached), each object keeps at most `max_memory_frames` tracked-frame
  memories in RAM and results keep at most `max_results_in_memory` logit maps;
  the rest goes to a per-session temporary folder, deleted on `close()` (about
  0.75 MiB per frame and object at 1024 px input: a bfloat16 memory and float32
  low-res logits, kept exactly because later passes and clicks read them).
- Objects on one frame share the image features and go through memory attention
  (grouped by memory layout) and the memory encoder as one batch; the SAM heads,
  about 1 % of a step, run object by object, because their small matrix products
  round differently with the batch size. A batch gives each object what it gets
  tracked alone, up to float rounding (bit for bit at 256 and 1024 px input on
  the CPUs measured).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import Any

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from masklet.errors import FrameSourceError, PromptError, SessionError
from masklet.io.frames import FrameSource, open_frame_source
from masklet.model.memory_selection import BankRules
from masklet.model.sam2 import SAM2Model
from masklet.model.tracking import NO_OBJ_SCORE, non_overlapping
from masklet.predict.held_bytes import held_array_bytes
from masklet.predict.precision import FastMode, resolve_fast_mode
from masklet.predict.results import FrameResult, ResultStore, upsample
from masklet.predict.spill import SpillDir
from masklet.predict.video_config import MemoryUsage, SessionLimits, session_tracking_config
from masklet.predict.video_frames import FrameFeed
from masklet.predict.video_prompts import check_obj_id, parse_prompt
from masklet.predict.video_step import TrackedObject, commit_pending, fill_holes, track_objects

log = logging.getLogger(__name__)

PREV_LOGITS_CLAMP = 32.0  # parity: earlier logits fed back with new clicks are clamped to +-32


class VideoPredictor:
    """Starts tracking sessions over one model; the model is shared and never changed.

    tracking: further `TrackingConfig` inference switches (names in `video_config.SESSION_FLAGS`).
    spill_dir: where session folders are made (the system temp folder by default).
    fast: speed over exactness (`predict.precision`): True computes in bfloat16 where the device
    has it (CUDA, CPUs with AVX-512 BF16 or AMX) and compiles the image encoder on CUDA; a
    `FastMode` says exactly what. False (the default) is the official float32 arithmetic.
    """

    def __init__(
        self,
        model: SAM2Model,
        *,
        add_all_frames_to_correct_as_cond: bool = True,
        fill_hole_area: int | None = None,
        tracking: Mapping[str, Any] | None = None,
        max_memory_frames: int = 16,
        max_results_in_memory: int = 64,
        max_cached_features: int = 2,
        spill_dir: str | os.PathLike[str] | None = None,
        fast: bool | FastMode = False,
    ) -> None:
        changes = {**(tracking or {}), "add_all_frames_to_correct_as_cond": add_all_frames_to_correct_as_cond}
        if fill_hole_area is not None:
            changes["fill_hole_area"] = fill_hole_area
        self.model = model
        self.config = session_tracking_config(model.config.tracking, changes)
        self.limits = SessionLimits(max_memory_frames, max_results_in_memory, max_cached_features, spill_dir)
        self.fast = resolve_fast_mode(fast, model.device)
        encode = model.encode_image
        if self.fast.compile_image_encoder:
            encode = torch.compile(encode, dynamic=False)
        self._encode = encode

    def start(self, source: Any, *, max_buffered: int = 16) -> TrackingSession:
        """A new session over a video path, a frame folder, a list of arrays, an iterator or a FrameSource.

        A FrameSource passed in stays open when the session closes; anything else is
        opened here and closed with the session. max_buffered: frames a live stream keeps.
        """
        owned = not isinstance(source, FrameSource)
        frames = open_frame_source(source, max_buffered=max_buffered)
        if frames.num_frames == 0:
            if owned:
                frames.close()
            raise FrameSourceError(f"{frames.name}: the video has no frames")
        feed = FrameFeed(
            frames, self.model, max_cached=self.limits.max_cached_features, owned=owned, encode=self._encode
        )
        return TrackingSession(self, feed)


class TrackingSession:
    """One video's prompts, memories and results. Not thread-safe; close it (or use `with`)."""

    def __init__(self, predictor: VideoPredictor, frames: FrameFeed) -> None:
        self.config = predictor.config
        self._model = predictor.model
        self._fast = predictor.fast
        self._frames = frames
        self._spill = SpillDir(predictor.limits.spill_dir)
        self._results = ResultStore(self._spill, max_in_memory=predictor.limits.max_results_in_memory)
        self._rules = BankRules.from_config(self.config)
        self._max_memory_frames = predictor.limits.max_memory_frames
        self._objects: dict[int, TrackedObject] = {}
        self._epoch = 0  # bumped by every change a running propagation must not miss
        self._closed = False

    # ---- state ----------------------------------------------------------------------------
    @property
    def obj_ids(self) -> list[int]:
        """Object ids in the order of their first prompt (the order of every logits batch)."""
        return list(self._objects)

    @property
    def num_frames(self) -> int | None:
        """Frames in the video; None for a live stream that has not ended."""
        return self._frames.num_frames

    @property
    def height(self) -> int:
        return self._frames.height

    @property
    def width(self) -> int:
        return self._frames.width

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise SessionError(
                "the tracking session is closed; start a new one with VideoPredictor.start(...)"
            )

    def _object(self, obj_id: Any) -> TrackedObject:
        obj = self._objects.get(check_obj_id(obj_id))
        if obj is None:
            raise SessionError(f"unknown object id {obj_id!r}; known objects: {self.obj_ids or 'none yet'}")
        return obj

    def memory_usage(self) -> MemoryUsage:
        """What the session holds in RAM and on disk (`ram_bytes` walks all of its state)."""
        return MemoryUsage(
            memories_in_ram=sum(obj.bank.num_in_memory for obj in self._objects.values()),
            results_in_ram=self._results.num_in_memory,
            features_cached=self._frames.num_cached,
            spilled=len(self._spill),
            spill_dir=self._spill.path,
            ram_bytes=held_array_bytes(self),
        )

    @property
    def _ptr_num_frames(self) -> int | None:
        # a live stream always uses the pointer cap, even once it has ended (see the module doc)
        return None if self._frames.is_live else self._frames.num_frames

    # ---- prompts --------------------------------------------------------------------------
    @torch.inference_mode()
    def add_prompt(
        self,
        frame: int,
        obj_id: int,
        points: Any = None,
        labels: Any = None,
        box: Any = None,
        mask: Any = None,
        clear: bool = False,
    ) -> tuple[list[int], Tensor]:
        """Add clicks, a box or a mask for one object on one frame; new ids start a new object.

        points: [[x, y], ...] video pixels with labels (1 foreground, 0 background); box:
        [x0, y0, x1, y1]; mask: (H, W) at video size. Clicks add to the frame's earlier
        clicks unless `clear`. Returns (obj_ids, logits (N, H, W) on this frame).
        """
        self._check_open()
        frame = self._frames.check(frame)
        obj_id = check_obj_id(obj_id)
        prompt = parse_prompt(
            points=points,
            labels=labels,
            box=box,
            mask=mask,
            height=self.height,
            width=self.width,
            image_size=self._model.config.image_size,
            device=self._model.device,
        )
        obj = self._objects.get(obj_id) or TrackedObject.new(
            obj_id, self._rules, spill=self._spill, max_in_memory=self._max_memory_frames
        )
        coords, labels_t = prompt.coords, prompt.labels
        if prompt.mask is None and not clear and frame in obj.points:
            if prompt.has_box:
                raise PromptError(
                    f"frame {frame} already has clicks for object {obj_id}; a box must come first: "
                    "pass clear=True to replace them"
                )
            old_coords, old_labels = obj.points[frame]
            coords, labels_t = (
                torch.cat([old_coords, coords], dim=1),
                torch.cat([old_labels, labels_t], dim=1),
            )

        is_init = frame not in obj.tracked
        is_cond = is_init or self.config.add_all_frames_to_correct_as_cond
        prev_logits = None
        if prompt.mask is None:
            earlier = obj.output(frame, self._results)
            if earlier is not None:
                prev_logits = earlier.clamp(-PREV_LOGITS_CLAMP, PREV_LOGITS_CLAMP)
        with self._compute():
            out = obj.prompt_step(
                self._model,
                self.config,
                self._frames.features(frame),
                frame=frame,
                is_init=is_init,
                coords=coords,
                labels=labels_t,
                mask=prompt.mask,
                prev_logits=prev_logits,
                num_frames=self._ptr_num_frames,
            )
        # nothing above changed the session: a failed prompt leaves it as it was
        self._frames.pin(frame)
        if prompt.mask is None:
            obj.points[frame] = (coords, labels_t)
        else:
            obj.points.pop(frame, None)
        obj.set_pending(frame, out, cond=is_cond, fill_hole_area=self.config.fill_hole_area)
        obj.prompted.add(frame)
        self._objects[obj_id] = obj
        self._epoch += 1
        return self.obj_ids, self._frame_logits(frame)

    @torch.inference_mode()
    def clear_prompts(self, frame: int, obj_id: int) -> tuple[list[int], Tensor]:
        """Forget one object's clicks, box or mask on one frame; returns (obj_ids, logits (N, H, W) there).

        As the official `clear_all_prompts_in_frame`: a prompt not yet propagated is dropped
        with its output; a conditioning frame becomes an ordinary tracked frame that keeps
        its last output and memory until a propagation tracks it again, and the next prompt
        there starts without memory. The object stays, even without prompts (propagate
        refuses until it gets one again).
        """
        self._check_open()
        frame = self._frames.check(frame, pull=False)
        obj = self._object(obj_id)
        obj.points.pop(frame, None)
        obj.prompted.discard(frame)
        if obj.pending.pop(frame, None) is not None:
            self._unpin_if_unused(frame)
        if obj.bank.demote(frame):
            obj.tracked.pop(frame, None)
        self._epoch += 1
        return self.obj_ids, self._frame_logits(frame)

    # ---- propagation ----------------------------------------------------------------------
    def propagate(
        self,
        start: int | None = None,
        max_frames: int | None = None,
        reverse: bool = False,
        *,
        progress: bool = False,
    ) -> Iterator[tuple[int, list[int], Tensor]]:
        """Track every object frame by frame, yielding (frame, obj_ids, logits (N, H, W)).

        start: first frame (default: the earliest prompted frame); max_frames: at most
        this many frames (default: to the end, or to frame 0 when reverse). Unlike the
        official `max_frame_num_to_track`, which yields one frame more, this is a count;
        and a reverse pass from frame 0 yields frame 0. A live stream is read as it
        yields. Prompts made meanwhile stop the iteration with SessionError.
        """
        self._check_open()
        if not self._objects:
            raise SessionError("nothing to track: add a prompt first with session.add_prompt(...)")
        if start is not None:
            start = self._frames.check(start)
        if max_frames is not None and (not isinstance(max_frames, int) or max_frames < 1):
            raise SessionError(f"max_frames must be a positive integer or None, got {max_frames!r}")
        return self._propagate(start, max_frames, bool(reverse), progress)

    @torch.inference_mode()
    def _propagate(
        self, start: int | None, max_frames: int | None, reverse: bool, progress: bool
    ) -> Iterator[tuple[int, list[int], Tensor]]:
        self._commit_pending()
        unprompted = [obj.obj_id for obj in self._objects.values() if not obj.bank.cond_frames]
        if unprompted:
            raise SessionError(
                f"object {unprompted[0]} has no prompt left; prompt it again (add_prompt) or remove it "
                "(remove_object) before propagating"
            )
        epoch = self._epoch
        if start is None:
            start = min(min(obj.bank.cond_frames) for obj in self._objects.values())
        step = -1 if reverse else 1
        stop = -1 if reverse else self._frames.num_frames  # None: a live stream, until it ends
        if max_frames is not None:
            last = start + step * max_frames
            stop = max(last, stop) if reverse else (last if stop is None else min(last, stop))
        bar = tqdm(total=None if stop is None else abs(stop - start), desc="tracking", disable=not progress)
        frame = start
        with bar:
            while (stop is None or frame != stop) and self._frames.exists(frame):
                if self._epoch != epoch or self._closed:
                    raise SessionError("the session changed during propagation; call propagate() again")
                with self._compute():  # per step: an autocast must not span the yield
                    track_objects(
                        self._model,
                        self.config,
                        self._frames.features(frame),
                        list(self._objects.values()),
                        frame=frame,
                        reverse=reverse,
                        num_frames=self._ptr_num_frames,
                        results=self._results,
                    )
                bar.update(1)
                yield frame, self.obj_ids, self._frame_logits(frame)
                frame += step

    def _commit_pending(self) -> None:
        """Write the prompted frames' outputs into memory (the official preflight)."""
        for obj in self._objects.values():
            for frame in list(obj.pending):
                with self._compute():
                    commit_pending(
                        self._model, self.config, self._frames.features(frame), obj, frame, self._results
                    )
                self._unpin_if_unused(frame)

    def _compute(self) -> contextlib.AbstractContextManager[None]:
        """Where the model runs: exact float32, or fast mode's autocast."""
        return self._fast.compute(self._model.device)

    def _unpin_if_unused(self, frame: int) -> None:
        if not any(frame in obj.pending for obj in self._objects.values()):
            self._frames.unpin(frame)

    # ---- objects --------------------------------------------------------------------------
    @torch.inference_mode()
    def remove_object(self, obj_id: int) -> list[int]:
        """Forget one object (prompts, memories, results); returns the remaining ids."""
        self._check_open()
        obj = self._objects.pop(self._object(obj_id).obj_id)
        obj.bank.clear()
        self._results.remove_object(obj.obj_id)
        for frame in obj.pending:
            self._unpin_if_unused(frame)
        self._epoch += 1
        return self.obj_ids

    def reset(self) -> None:
        """Forget every object, prompt and result; the video stays open."""
        self._check_open()
        for obj in self._objects.values():
            obj.bank.clear()
            for frame in obj.pending:
                self._frames.unpin(frame)
        self._objects.clear()
        self._results.clear()
        self._epoch += 1

    # ---- results --------------------------------------------------------------------------
    def prompted_frames(self, obj_id: int) -> list[int]:
        """Frames where `obj_id` received clicks, a box or a mask, ascending."""
        self._check_open()
        return sorted(self._object(obj_id).prompted)

    def conditioning_frames(self, obj_id: int) -> list[int]:
        """Frames whose output `obj_id`'s memory takes as given (prompted ones, also not yet propagated)."""
        self._check_open()
        obj = self._object(obj_id)
        return sorted(set(obj.bank.cond_frames) | {f for f, out in obj.pending.items() if out.cond})

    def result(self, frame: int, obj_id: int) -> FrameResult | None:
        """One object's latest prediction on a frame (low-res logits, score), or None."""
        self._check_open()
        frame = self._frames.check(frame, pull=False)
        obj = self._object(obj_id)
        pending = obj.pending.get(frame)
        if pending is not None:
            return FrameResult(frame, obj.obj_id, pending.logits, float(pending.obj_score_logits))
        return self._results.get(frame, obj.obj_id)

    @torch.inference_mode()
    def logits(self, frame: int) -> tuple[list[int], Tensor]:
        """(obj_ids, (N, H, W) logits) on a frame; NO_OBJ_SCORE for objects without a result."""
        self._check_open()
        return self.obj_ids, self._frame_logits(self._frames.check(frame, pull=False))

    def masks(self, frame: int) -> tuple[list[int], np.ndarray]:
        """(obj_ids, (N, H, W) bool masks) on a frame."""
        obj_ids, logits = self.logits(frame)
        return obj_ids, (logits > 0).cpu().numpy()

    def _frame_logits(self, frame: int) -> Tensor:
        maps = []
        for obj in self._objects.values():
            low = obj.output(frame, self._results)
            if low is None:
                maps.append(
                    torch.full((1, 1, self.height, self.width), NO_OBJ_SCORE, device=self._model.device)
                )
            else:
                maps.append(upsample(low, self.height, self.width))
        if not maps:
            return torch.empty(0, self.height, self.width, device=self._model.device)
        logits = torch.cat(maps)
        if self.config.non_overlap_masks:
            logits = non_overlapping(logits)
        return logits[:, 0]

    # ---- lifetime -------------------------------------------------------------------------
    def close(self) -> None:
        """Release the video, cached features and the session's temporary folder."""
        if self._closed:
            return
        self._closed = True
        self._objects.clear()
        self._results.clear()
        self._frames.close()
        self._spill.close()

    def __enter__(self) -> TrackingSession:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["VideoPredictor", "TrackingSession", "FrameResult", "MemoryUsage", "fill_holes"]

"""`Store` methods for a masklet's per-frame masks (versioned COCO RLE) and the prompts behind them."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select

from masklet.engine.records import FrameMask, Prompt, as_frame_mask, as_prompt
from masklet.engine.schema import MASK_SOURCES, PROMPT_KINDS, FrameMaskRow, MaskletRow, PromptRow, utc_now
from masklet.engine.store_base import (
    StoreMethods,
    add_event,
    add_row,
    bump_version,
    flush,
    get_row,
    masklet_and_video,
    where_given,
)
from masklet.engine.store_checks import (
    InvalidEditError,
    check_duration,
    check_frame,
    check_prompt,
    check_version,
    json_text,
    one_of,
    rle_json,
)
from masklet.engine.vocabulary import EventAction
from masklet.errors import NotFoundError


class MaskMethods(StoreMethods):
    def put_frame_mask(
        self,
        masklet_id: int,
        frame: int,
        rle: Mapping[str, Any],
        *,
        source: str,
        by: str,
        expected_version: int | None = None,
        phase: int | None = None,
        duration_s: float | None = None,
    ) -> FrameMask:
        """Save one frame's mask. `expected_version` is the version read; None means "no mask there yet".

        `duration_s` (annotator seconds the mask took) goes on the `mask.put` event it logs.
        """
        versions = None if expected_version is None else {frame: expected_version}
        saved = self.put_frame_masks(
            masklet_id, {frame: rle}, source=source, by=by, expected_versions=versions, phase=phase,
            duration_s=duration_s,
        )  # fmt: skip
        return saved[0]

    def put_frame_masks(
        self,
        masklet_id: int,
        masks: Mapping[int, Mapping[str, Any]],
        *,
        source: str,
        by: str,
        expected_versions: Mapping[int, int] | None = None,
        phase: int | None = None,
        duration_s: float | None = None,
    ) -> list[FrameMask]:
        """Save masks for several frames in one transaction: all of them, or (on any error) none.

        `masks` maps frame -> COCO RLE; a frame missing from `expected_versions` must have no mask yet.
        `duration_s`, the annotator time of the whole write, goes on the `mask.put` event of its
        first (lowest) frame only, the others get None, so that summing the events counts it once.
        """
        one_of(source, MASK_SOURCES, "mask source")
        source = str(source)
        duration_s = check_duration(duration_s)
        expected = dict(expected_versions or {})
        with self._write() as s:
            masklet, video = masklet_and_video(s, masklet_id, lock=True)
            texts = {
                check_frame(video, f): rle_json(r, height=video.height, width=video.width)
                for f, r in masks.items()
            }
            if extra := sorted(set(expected) - set(texts)):
                raise InvalidEditError(
                    f"expected_versions names frames {extra} that have no mask in this write"
                )
            if not texts:
                return []
            where = (FrameMaskRow.masklet_id == masklet_id, FrameMaskRow.frame.in_(list(texts)))
            current = {r.frame: r for r in s.scalars(select(FrameMaskRow).where(*where))}
            for f in sorted(texts):
                what = f"frame {f} of masklet {masklet_id}"
                check_version(current[f].version if f in current else None, expected.get(f), what)
            now, saved = utc_now(), []
            for f in sorted(texts):
                row = current.get(f)
                if row is None:
                    row = FrameMaskRow(
                        masklet_id=masklet_id, frame=f, rle=texts[f], source=source, version=1, updated_at=now
                    )
                    s.add(row)
                else:
                    row.rle, row.source, row.version, row.updated_at = texts[f], source, row.version + 1, now
                saved.append(row)
                payload = {"source": source, "version": row.version}
                refs = {"masklet_id": masklet_id, "frame": f, "phase": phase, "duration_s": duration_s}
                add_event(s, EventAction.MASK_PUT, payload, by=by, video=video, at=now, **refs)
                duration_s = None  # counted once, on the first frame
            bump_version(masklet, now)
            flush(s, f"a mask of masklet {masklet_id}")
            return [as_frame_mask(r) for r in saved]

    def get_frame_masks(self, masklet_id: int, *, frames: Iterable[int] | None = None) -> list[FrameMask]:
        """The masklet's saved masks in frame order (only `frames`, if given)."""
        stmt = select(FrameMaskRow).where(FrameMaskRow.masklet_id == masklet_id).order_by(FrameMaskRow.frame)
        if frames is not None:
            stmt = stmt.where(FrameMaskRow.frame.in_([operator.index(f) for f in frames]))
        with self._read() as s:
            get_row(s, MaskletRow, masklet_id)
            return [as_frame_mask(r) for r in s.scalars(stmt)]

    def get_frame_mask(self, masklet_id: int, frame: int) -> FrameMask:
        with self._read() as s:
            get_row(s, MaskletRow, masklet_id)
            row = s.get(FrameMaskRow, (masklet_id, operator.index(frame)))
            if row is None:
                raise NotFoundError(f"masklet {masklet_id} has no mask on frame {frame}")
            return as_frame_mask(row)

    def delete_frame_mask(
        self, masklet_id: int, frame: int, *, expected_version: int, by: str, phase: int | None = None
    ) -> None:
        with self._write() as s:
            masklet, video = masklet_and_video(s, masklet_id, lock=True)
            row = s.get(FrameMaskRow, (masklet_id, operator.index(frame)))
            what = f"frame {frame} of masklet {masklet_id}"
            check_version(None if row is None else row.version, expected_version, what)
            s.delete(row)
            now = utc_now()
            bump_version(masklet, now)
            refs = {"masklet_id": masklet_id, "frame": frame, "phase": phase}
            add_event(
                s, EventAction.MASK_DELETE, {"version": expected_version}, by=by, video=video, at=now, **refs
            )

    def add_prompt(
        self,
        masklet_id: int,
        frame: int,
        kind: str,
        payload: Mapping[str, Any],
        *,
        by: str,
        phase: int | None = None,
        duration_s: float | None = None,
    ) -> Prompt:
        """Record a prompt: click {"points": [[x, y]], "labels": [1]}, box {"box": [x0, y0, x1, y1]}, mask {"rle": ...}.

        Coordinates are video pixels. The `prompt.add` event it logs carries `clicks` (the number
        of points) in its payload and `duration_s` (annotator seconds the prompt took, if given).
        """
        one_of(kind, PROMPT_KINDS, "prompt kind")
        duration_s = check_duration(duration_s)
        text = json_text(payload, "prompt payload")
        with self._write() as s:
            _masklet, video = masklet_and_video(s, masklet_id, lock=False)
            check_frame(video, frame)
            check_prompt(kind, payload, video)
            row = PromptRow(
                masklet_id=masklet_id, frame=frame, kind=kind, payload=text, by=by, created_at=utc_now()
            )
            add_row(s, row, "prompt")
            clicks = len(payload["points"]) if kind == "click" else 0
            summary = {"kind": kind, "prompt_id": row.id, "clicks": clicks}
            refs = {"masklet_id": masklet_id, "frame": frame, "phase": phase, "duration_s": duration_s}
            add_event(s, EventAction.PROMPT_ADD, summary, by=by, video=video, at=row.created_at, **refs)
            return as_prompt(row)

    def list_prompts(self, masklet_id: int, *, frame: int | None = None) -> list[Prompt]:
        stmt = where_given(
            select(PromptRow).where(PromptRow.masklet_id == masklet_id).order_by(PromptRow.id),
            (PromptRow.frame, frame),
        )
        with self._read() as s:
            get_row(s, MaskletRow, masklet_id)
            return [as_prompt(r) for r in s.scalars(stmt)]

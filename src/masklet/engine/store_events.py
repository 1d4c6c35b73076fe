"""`Store` methods for the append-only event log: annotator actions and their effort, read back in order."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select

from masklet.engine.records import Event, as_event
from masklet.engine.schema import EventRow, MaskletRow, ProjectRow, VideoRow
from masklet.engine.store_base import StoreMethods, add_event, get_row, where_given
from masklet.engine.store_checks import check_duration, check_frame, check_text, same_id


class EventMethods(StoreMethods):
    def log_event(
        self,
        action: str,
        *,
        by: str,
        project_id: int | None = None,
        video_id: int | None = None,
        masklet_id: int | None = None,
        frame: int | None = None,
        phase: int | None = None,
        duration_s: float | None = None,
        payload: Mapping[str, Any] | None = None,
        at: datetime | None = None,
    ) -> Event:
        """Append an event; the video and project are filled in from the masklet (or video) when omitted.

        `duration_s` is the annotator time the action took; `at` defaults to now (a naive `at` is UTC).
        """
        check_text(action, "action", 64)
        duration_s = check_duration(duration_s)
        with self._write() as s:
            if masklet_id is not None:
                owner = get_row(s, MaskletRow, masklet_id).video_id
                video_id = same_id(video_id, owner, "video_id", f"masklet {masklet_id}")
            if video_id is not None:
                video = get_row(s, VideoRow, video_id)
                project_id = same_id(project_id, video.project_id, "project_id", f"video {video_id}")
                if frame is not None:
                    check_frame(video, frame)
            if project_id is not None:
                get_row(s, ProjectRow, project_id)
            refs = {"project_id": project_id, "video_id": video_id, "masklet_id": masklet_id, "frame": frame}
            row = add_event(s, action, payload, by=by, at=at, phase=phase, duration_s=duration_s, **refs)
            s.flush()
            return as_event(row)

    def list_events(
        self,
        *,
        project_id: int | None = None,
        video_id: int | None = None,
        masklet_id: int | None = None,
        action: str | None = None,
        phase: int | None = None,
        by: str | None = None,
    ) -> list[Event]:
        """Events in the order they were written, filtered by any of the arguments."""
        stmt = where_given(
            select(EventRow).order_by(EventRow.id),
            (EventRow.project_id, project_id),
            (EventRow.video_id, video_id),
            (EventRow.masklet_id, masklet_id),
            (EventRow.action, action),
            (EventRow.phase, phase),
            (EventRow.by, by),
        )
        with self._read() as s:
            return [as_event(r) for r in s.scalars(stmt)]

"""`Store` methods for masklets: create one, read and list them, name it, move it through review, delete it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sqlalchemy import delete, func, select

from masklet.engine.records import Masklet, as_masklet
from masklet.engine.schema import (
    MASKLET_TYPES,
    STATUSES,
    EventRow,
    FrameMaskRow,
    JobRow,
    MaskletRow,
    PromptRow,
    VideoRow,
    utc_now,
)
from masklet.engine.store_base import (
    StoreMethods,
    add_event,
    add_row,
    bump_version,
    get_row,
    masklet_and_video,
    where_given,
)
from masklet.engine.store_checks import (
    DuplicateError,
    InvalidEditError,
    check_text,
    check_version,
    json_text,
    one_of,
)
from masklet.engine.vocabulary import DELETED_MASKLET, EventAction, JobStatus

# Allowed status changes; a rejected masklet goes back to the annotation queue.
TRANSITIONS = MappingProxyType(
    {
        "draft": frozenset({"in_review"}),
        "in_review": frozenset({"accepted", "rejected", "draft"}),
        "rejected": frozenset({"draft", "in_review"}),
        "accepted": frozenset({"in_review"}),
    }
)


KEEP: Any = object()  # describe_masklet: leave this field as it is


class MaskletMethods(StoreMethods):
    def create_masklet(
        self,
        video_id: int,
        *,
        by: str,
        obj_id: int | None = None,
        category: str | None = None,
        type: str = "manual",
        meta: Mapping[str, Any] | None = None,
        phase: int | None = None,
    ) -> Masklet:
        """Start a masklet in `draft`; `obj_id` defaults to the video's next free object id (from 0)."""
        one_of(type, MASKLET_TYPES, "masklet type")
        type = str(type)
        meta_text = json_text(meta, "masklet meta")
        if category is not None:
            check_text(category, "category")
        if obj_id is not None and (isinstance(obj_id, bool) or not isinstance(obj_id, int) or obj_id < 0):
            raise InvalidEditError(f"obj_id must be a non-negative integer, got {obj_id!r}")
        with self._write() as s:
            video = get_row(s, VideoRow, video_id, lock=True)  # serialises object-id allocation
            ids = select(MaskletRow.id).where(MaskletRow.video_id == video_id)
            if obj_id is None:
                top = s.scalar(select(func.max(MaskletRow.obj_id)).where(MaskletRow.video_id == video_id))
                obj_id = 0 if top is None else top + 1
            elif (existing := s.scalar(ids.where(MaskletRow.obj_id == obj_id))) is not None:
                raise DuplicateError(f"video {video_id} already has object id {obj_id} (masklet {existing})")
            now = utc_now()
            row = MaskletRow(
                video_id=video_id,
                obj_id=obj_id,
                category=category,
                type=type,
                status="draft",
                version=1,
                meta=meta_text,
                created_at=now,
                updated_at=now,
            )
            add_row(s, row, f"object id {obj_id} in video {video_id}")
            payload = {"obj_id": obj_id, "type": type}
            add_event(
                s, EventAction.MASKLET_CREATE, payload, by=by, video=video, masklet_id=row.id, phase=phase
            )
            return as_masklet(row)

    def get_masklet(self, masklet_id: int) -> Masklet:
        with self._read() as s:
            return as_masklet(get_row(s, MaskletRow, masklet_id))

    def list_masklets(
        self,
        *,
        video_id: int | None = None,
        project_id: int | None = None,
        status: str | None = None,
        type: str | None = None,
    ) -> list[Masklet]:
        if status is not None:
            one_of(status, STATUSES, "masklet status")
        if type is not None:
            one_of(type, MASKLET_TYPES, "masklet type")
        stmt = select(MaskletRow).order_by(MaskletRow.id)
        if project_id is not None:
            stmt = stmt.join(VideoRow, VideoRow.id == MaskletRow.video_id)
        stmt = where_given(
            stmt,
            (MaskletRow.video_id, video_id),
            (VideoRow.project_id, project_id),
            (MaskletRow.status, status),
            (MaskletRow.type, type),
        )
        with self._read() as s:
            return [as_masklet(r) for r in s.scalars(stmt)]

    def set_masklet_status(
        self,
        masklet_id: int,
        status: str,
        *,
        expected_version: int,
        by: str,
        reason: str | None = None,
        phase: int | None = None,
    ) -> Masklet:
        """Move a masklet along draft -> in_review -> accepted/rejected (see `TRANSITIONS`)."""
        one_of(status, STATUSES, "masklet status")
        with self._write() as s:
            row, video = masklet_and_video(s, masklet_id, lock=True)
            check_version(row.version, expected_version, f"masklet {masklet_id}")
            if status not in TRANSITIONS[row.status]:
                allowed = ", ".join(sorted(TRANSITIONS[row.status]))
                raise InvalidEditError(
                    f"masklet {masklet_id} is {row.status}; it can move to {allowed}, not {status}"
                )
            old, row.status = row.status, status
            bump_version(row, utc_now())
            payload = {"from": old, "to": status, "reason": reason}
            add_event(
                s, EventAction.MASKLET_STATUS, payload, by=by, video=video, masklet_id=masklet_id, phase=phase
            )
            s.flush()
            return as_masklet(row)

    def describe_masklet(
        self,
        masklet_id: int,
        *,
        expected_version: int,
        by: str,
        name: str | None = KEEP,
        category: str | None = KEEP,
    ) -> Masklet:
        """Set (or with None clear) a masklet's display name (`meta["name"]`) and its category."""
        changes: dict[str, Any] = {}
        for field, value in (("name", name), ("category", category)):
            if value is not KEEP:
                if value is not None:
                    check_text(value, field)
                changes[field] = value
        if not changes:
            raise InvalidEditError(f"masklet {masklet_id}: give a name or a category to change")
        with self._write() as s:
            row, video = masklet_and_video(s, masklet_id, lock=True)
            check_version(row.version, expected_version, f"masklet {masklet_id}")
            if "name" in changes:
                meta = json.loads(row.meta)
                if changes["name"] is None:
                    meta.pop("name", None)
                else:
                    meta["name"] = changes["name"]
                row.meta = json_text(meta, "masklet meta")
            if "category" in changes:
                row.category = changes["category"]
            bump_version(row, utc_now())
            add_event(s, EventAction.MASKLET_EDIT, changes, by=by, video=video, masklet_id=masklet_id)
            s.flush()
            return as_masklet(row)

    def delete_masklet(self, masklet_id: int, *, expected_version: int, by: str) -> int:
        """Delete a masklet that is not accepted, with its masks, prompts and finished jobs.

        Returns how many frame masks went. Its events stay (the history keeps what was done and
        when), without the masklet and marked `"deleted_masklet": id` in their payload, which
        keeps them out of the effort table; a `masklet.delete` event records the deletion.
        """
        with self._write() as s:
            row, video = masklet_and_video(s, masklet_id, lock=True)
            check_version(row.version, expected_version, f"masklet {masklet_id}")
            if row.status == "accepted":
                raise InvalidEditError(
                    f"masklet {masklet_id} is accepted; a reviewer moves it back to review before it can be deleted"
                )
            jobs = s.scalars(select(JobRow).where(JobRow.masklet_id == masklet_id))
            if open_jobs := [j.id for j in jobs if not JobStatus(j.status).final]:
                raise InvalidEditError(f"masklet {masklet_id} is being propagated (jobs {open_jobs})")
            frames = s.scalar(
                select(func.count()).select_from(FrameMaskRow).where(FrameMaskRow.masklet_id == masklet_id)
            )
            for table in (FrameMaskRow, PromptRow, JobRow):
                s.execute(delete(table).where(table.masklet_id == masklet_id))
            for event in s.scalars(select(EventRow).where(EventRow.masklet_id == masklet_id)):
                payload = json.loads(event.payload)
                payload[DELETED_MASKLET] = masklet_id
                event.payload, event.masklet_id = json_text(payload, "event payload"), None
            payload = {"masklet_id": masklet_id, "obj_id": row.obj_id, "status": row.status, "frames": frames}
            add_event(s, EventAction.MASKLET_DELETE, payload, by=by, video=video)
            s.delete(row)
            s.flush()
            return int(frames or 0)

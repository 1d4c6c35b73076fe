"""`Store` methods for masklets: create one, read and list them, move one through review."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from sqlalchemy import func, select

from masklet.engine.records import Masklet, as_masklet
from masklet.engine.schema import MASKLET_TYPES, STATUSES, MaskletRow, VideoRow, utc_now
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
from masklet.engine.vocabulary import EventAction

# Allowed status changes; a rejected masklet goes back to the annotation queue.
TRANSITIONS = MappingProxyType(
    {
        "draft": frozenset({"in_review"}),
        "in_review": frozenset({"accepted", "rejected", "draft"}),
        "rejected": frozenset({"draft", "in_review"}),
        "accepted": frozenset({"in_review"}),
    }
)


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

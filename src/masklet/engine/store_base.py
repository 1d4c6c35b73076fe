"""What the store's method groups share: the sessions `Store` opens, and row work inside one.

Row helpers are plain functions of a session. The store opens every session with
`info={"store": store}`, so a lookup that finds nothing can name the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from masklet.engine.schema import Base, EventRow, MaskletRow, VideoRow, as_utc, utc_now
from masklet.engine.store_checks import DuplicateError, check_text, json_text
from masklet.errors import NotFoundError


class StoreMethods:
    """Base of a group of `Store` methods; `Store` provides the sessions (see `Store._write`)."""

    _write: Callable[[], AbstractContextManager[Session]]  # one edit: a transaction, or a savepoint in one
    _read: Callable[[], AbstractContextManager[Session]]


def get_row(session: Session, model: Any, key: int, *, lock: bool = False) -> Any:
    """The `model` row with id `key` (locked for update if `lock`); `NotFoundError` if there is none."""
    stmt = select(model).where(model.id == key)
    row = session.scalars(stmt.with_for_update() if lock else stmt).one_or_none()
    if row is None:
        what = model.__tablename__[:-1]
        raise NotFoundError(
            f"no {what} with id {key!r} in {session.info['store']!r}; list them with Store.list_{what}s"
        )
    return row


def masklet_and_video(session: Session, masklet_id: int, *, lock: bool) -> tuple[MaskletRow, VideoRow]:
    masklet = get_row(session, MaskletRow, masklet_id, lock=lock)
    return masklet, get_row(session, VideoRow, masklet.video_id)


def where_given(stmt: Select[Any], *pairs: tuple[Any, Any]) -> Select[Any]:
    """`stmt` narrowed to the rows whose column equals the value, for each (column, value) not None."""
    for column, value in pairs:
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


def flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent writer won a race the checks before could not see
        raise DuplicateError(f"{what} already exists (written concurrently); re-read and retry") from exc


def add_row(session: Session, row: Base, what: str) -> None:
    """Insert `row` now, so that its id is known; a unique-key race raises `DuplicateError`."""
    session.add(row)
    flush(session, what)


def bump_version(masklet: MaskletRow, now: datetime) -> None:
    # A masklet's version moves with its status and with each of its masks, so that a
    # review decision names exactly the masks the reviewer saw.
    masklet.version, masklet.updated_at = masklet.version + 1, now


def add_event(
    session: Session,
    action: str,
    payload: Mapping[str, Any] | None,
    *,
    by: str,
    video: VideoRow | None = None,
    at: datetime | None = None,
    **refs: Any,
) -> EventRow:
    """Add an event row; `video` fills in the video and project ids, `refs` the other columns."""
    check_text(by, "`by` (who made the change)")
    if video is not None:
        refs.update(video_id=video.id, project_id=video.project_id)
    text = json_text(payload, "event payload")
    row = EventRow(
        action=str(action), by=by, at=utc_now() if at is None else as_utc(at), payload=text, **refs
    )
    session.add(row)
    return row

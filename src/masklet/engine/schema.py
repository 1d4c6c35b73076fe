"""The annotation store's tables as SQLAlchemy 2 declarative rows, and the values their columns allow.

Alembic owns the database schema: `migrations/env.py` compares revisions against `Base.metadata`,
and a test checks that the migrated database equals these models. Timestamps are stored in UTC.
"""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from masklet.engine.vocabulary import (
    JobStatus,
    MaskletStatus,
    MaskletType,
    MaskSource,
    PromptKind,
    Role,
    TokenKind,
)

# plain strings (the CHECK constraints are written from them)
MASKLET_TYPES = tuple(t.value for t in MaskletType)
STATUSES = tuple(s.value for s in MaskletStatus)
MASK_SOURCES = tuple(s.value for s in MaskSource)
PROMPT_KINDS = tuple(k.value for k in PromptKind)
ROLES = tuple(r.value for r in Role)
TOKEN_KINDS = tuple(k.value for k in TokenKind)
JOB_STATUSES = tuple(s.value for s in JobStatus)


def as_utc(value: datetime) -> datetime:
    """`value` as a timezone-aware UTC time; a naive one is taken to be UTC already."""
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class ProjectRow(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class VideoRow(Base):
    __tablename__ = "videos"
    __table_args__ = (
        UniqueConstraint("project_id", "content_hash"),
        CheckConstraint("fps > 0 AND width > 0 AND height > 0 AND frame_count > 0", name="positive"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    fps: Mapped[float] = mapped_column(Float)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    frame_count: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(128))
    # JSON object, e.g. the SA-V video fields of an imported file under "sav"; the server default
    # fills rows written before revision 0002 (and raw inserts that leave it out)
    meta: Mapped[str] = mapped_column(Text, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MaskletRow(Base):
    __tablename__ = "masklets"
    __table_args__ = (
        UniqueConstraint("video_id", "obj_id"),
        CheckConstraint(_in("type", MASKLET_TYPES), name="type"),
        CheckConstraint(_in("status", STATUSES), name="status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id"), index=True)
    obj_id: Mapped[int] = mapped_column(Integer)
    category: Mapped[str | None] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    version: Mapped[int] = mapped_column(Integer)
    meta: Mapped[str] = mapped_column(Text)  # JSON object, e.g. an auto masklet's stability score
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class FrameMaskRow(Base):
    __tablename__ = "frame_masks"
    __table_args__ = (
        CheckConstraint("frame >= 0", name="frame"),
        CheckConstraint(_in("source", MASK_SOURCES), name="source"),
    )
    masklet_id: Mapped[int] = mapped_column(ForeignKey("masklets.id"), primary_key=True)
    frame: Mapped[int] = mapped_column(Integer, primary_key=True)
    rle: Mapped[str] = mapped_column(Text)  # COCO RLE as JSON: {"size": [h, w], "counts": str}
    source: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class PromptRow(Base):
    __tablename__ = "prompts"
    __table_args__ = (CheckConstraint(_in("kind", PROMPT_KINDS), name="kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    masklet_id: Mapped[int] = mapped_column(ForeignKey("masklets.id"), index=True)
    frame: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[str] = mapped_column(Text)  # JSON object
    by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class EventRow(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    by: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64), index=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"), index=True)
    video_id: Mapped[int | None] = mapped_column(ForeignKey("videos.id"), index=True)
    masklet_id: Mapped[int | None] = mapped_column(ForeignKey("masklets.id"), index=True)
    frame: Mapped[int | None] = mapped_column(Integer)
    phase: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)  # annotator time this action took
    payload: Mapped[str] = mapped_column(Text)  # JSON object


class UserRow(Base):
    """A person using the web tool; the password only as its argon2 hash."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint(_in("role", ROLES), name="role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TokenRow(Base):
    """A login: the page's session cookie or an API bearer token, stored as its sha256 only."""

    __tablename__ = "tokens"
    __table_args__ = (CheckConstraint(_in("kind", TOKEN_KINDS), name="kind"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class JobRow(Base):
    """A propagation run of one masklet: who asked, from where, how far it got, how it ended.

    State lives here, not in a server's memory, so that every worker (and every page on the
    video) sees it, a cancel reaches the worker that runs it, and a server killed mid-way
    leaves a row that the next start marks interrupted (no heartbeat for `stale` seconds).
    """

    __tablename__ = "jobs"
    __table_args__ = (CheckConstraint(_in("status", JOB_STATUSES), name="status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    masklet_id: Mapped[int] = mapped_column(ForeignKey("masklets.id"), index=True)
    video_id: Mapped[int] = mapped_column(ForeignKey("videos.id"), index=True)
    phase: Mapped[int] = mapped_column(Integer)
    by: Mapped[str] = mapped_column(String(200))
    start_frame: Mapped[int | None] = mapped_column(Integer)
    reverse: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), index=True)
    frames_done: Mapped[int] = mapped_column(Integer)
    frames_total: Mapped[int] = mapped_column(Integer)
    last_frame: Mapped[int | None] = mapped_column(Integer)
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    error: Mapped[str | None] = mapped_column(Text)
    resumed_from: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

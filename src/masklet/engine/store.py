"""The annotation store: SQLAlchemy schema and a `Store` repository (SQLite by default, PostgreSQL by URL).

Every public edit is one committed transaction (or joins `Store.transaction()`) and
leaves an entry in the append-only event log naming who made it. Frame masks and
masklet status use optimistic concurrency: a write names the version it read, and a
stale one raises `StaleWriteError`. A masklet's version also moves when any of its
frame masks changes, so a review decision refers to exactly the masks the reviewer saw.
Effort accounting reads the events' `action`, `phase`, `frame` and `duration_s`; other
measures (clicks, the tool used) go into the payload, e.g. `{"clicks": 3}`. The store's own
actions: project.create, video.add, masklet.create, masklet.status {from, to, reason},
mask.put {source, version}, mask.delete {version}, prompt.add {kind, prompt_id, clicks}.
"""

from __future__ import annotations

import json
import logging
import operator
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy import (
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
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy.engine import URL, Connection, Dialect, Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from masklet.errors import FormatError, MaskletError, NotFoundError, PromptError

log = logging.getLogger(__name__)
_T = TypeVar("_T")

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
MASKLET_TYPES = ("manual", "auto")
STATUSES = ("draft", "in_review", "accepted", "rejected")
MASK_SOURCES = ("manual", "click_model", "propagated", "auto")
PROMPT_KINDS = ("click", "box", "mask")
# Allowed status changes; a rejected masklet goes back to the annotation queue.
TRANSITIONS = MappingProxyType(
    {
        "draft": frozenset({"in_review"}),
        "in_review": frozenset({"accepted", "rejected", "draft"}),
        "rejected": frozenset({"draft", "in_review"}),
        "accepted": frozenset({"in_review"}),
    }
)


class StaleWriteError(MaskletError):
    """A write based on a version that another writer has replaced; re-read and retry."""


class InvalidEditError(MaskletError, ValueError):
    """An edit the store refuses: a frame past the video's end, a bad status change or value."""


class DuplicateError(InvalidEditError):
    """A second video with the same content hash in a project, or a second masklet with one object id."""


# ----------------------------------------------------------------------------------------------- schema
class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always returned timezone-aware (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(timezone.utc) if value.tzinfo else value
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value.replace(tzinfo=timezone.utc)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


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


# ------------------------------------------------------------------------------------------ domain rows
@dataclass(frozen=True, slots=True)
class Project:
    id: int
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Video:
    id: int
    project_id: int
    path: str
    fps: float
    width: int
    height: int
    frame_count: int
    content_hash: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Masklet:
    id: int
    video_id: int
    obj_id: int
    category: str | None
    type: str  # "manual" | "auto"
    status: str  # "draft" | "in_review" | "accepted" | "rejected"
    version: int
    meta: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class FrameMask:
    masklet_id: int
    frame: int
    size: tuple[int, int]  # (H, W)
    counts: str  # compressed COCO RLE counts
    source: str  # "manual" | "click_model" | "propagated" | "auto"
    version: int
    updated_at: datetime

    @property
    def rle(self) -> dict[str, Any]:
        """A fresh COCO RLE dict, ready for `pycocotools.mask.decode`."""
        return {"size": list(self.size), "counts": self.counts}


@dataclass(frozen=True, slots=True)
class Prompt:
    id: int
    masklet_id: int
    frame: int
    kind: str  # "click" | "box" | "mask"
    payload: Mapping[str, Any]
    by: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    at: datetime
    by: str
    action: str
    project_id: int | None
    video_id: int | None
    masklet_id: int | None
    frame: int | None
    phase: int | None
    duration_s: float | None
    payload: Mapping[str, Any]


def _ro(text: str) -> Mapping[str, Any]:
    return MappingProxyType(json.loads(text))


def _domain(cls: type[_T], row: Base, **converted: Any) -> _T:
    """Copy a row into its frozen dataclass; `converted` overrides fields stored in another form."""
    return cls(
        **{f.name: converted[f.name] if f.name in converted else getattr(row, f.name) for f in fields(cls)}
    )


def _masklet(r: MaskletRow) -> Masklet:
    return _domain(Masklet, r, meta=_ro(r.meta))


def _frame_mask(r: FrameMaskRow) -> FrameMask:
    rle = json.loads(r.rle)
    return _domain(FrameMask, r, size=tuple(rle["size"]), counts=rle["counts"])


def _flush(session: Session, what: str) -> None:
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent writer won a race the checks before could not see
        raise DuplicateError(f"{what} already exists (written concurrently); re-read and retry") from exc


def _add(session: Session, row: Base, what: str) -> None:
    session.add(row)
    _flush(session, what)


def _check_version(actual: int | None, expected: int | None, what: str) -> None:
    if actual != expected:

        def say(v: int | None) -> str:
            return "no mask" if v is None else f"version {v}"

        raise StaleWriteError(
            f"{what} has {say(actual)} but this write was based on {say(expected)}: another writer changed it "
            "since it was read; re-read it, reapply the edit and retry"
        )


def _same(given: int | None, actual: int, name: str, owner: str) -> int:
    if given is not None and given != actual:
        raise InvalidEditError(f"{name}={given} contradicts {owner}, which belongs to {name}={actual}")
    return actual


# ------------------------------------------------------------------------------------------ validation
def _now() -> datetime:
    return datetime.now(timezone.utc)


def _json(value: Mapping[str, Any] | None, what: str) -> str:
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise InvalidEditError(f"{what} must be a JSON object (a mapping), got {type(value).__name__}")
    try:
        return json.dumps(dict(value), separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidEditError(f"{what} must be JSON-serialisable: {exc}") from exc


def _one_of(value: str, allowed: tuple[str, ...], what: str) -> str:
    if value not in allowed:
        raise InvalidEditError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def _check_frame(video: VideoRow, frame: int) -> int:
    try:
        index = operator.index(frame)  # numpy integers welcome; floats and strings not
    except TypeError:
        index = -1
    if isinstance(frame, bool) or not 0 <= index < video.frame_count:
        raise InvalidEditError(
            f"frame {frame!r} is outside video {video.id}, which has frames 0..{video.frame_count - 1}; "
            "check the frame index (or the frame count the video was added with)"
        )
    return index


def _rle_json(rle: Mapping[str, Any], *, height: int, width: int) -> str:
    """Check a compressed COCO RLE against an (H, W) frame and return its canonical JSON text.

    Reads `size` and the counts' alphabet only; it does not decode the mask.
    """
    if not isinstance(rle, Mapping) or "size" not in rle or "counts" not in rle:
        raise FormatError(f"expected a COCO RLE mapping {{'size': [h, w], 'counts': str}}, got {rle!r:.80}")
    size, counts = rle["size"], rle["counts"]
    if (
        not isinstance(size, list | tuple)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in size)
    ):
        raise FormatError(f"RLE 'size' must be [height, width] as two integers, got {size!r:.80}")
    if isinstance(counts, bytes):
        counts = counts.decode("ascii", errors="replace")
    if not isinstance(counts, str):
        raise FormatError(
            f"RLE 'counts' must be a compressed string, got {type(counts).__name__}; "
            "compress uncompressed RLE with pycocotools.mask.frPyObjects first"
        )
    if not counts or any(not "0" <= c <= "o" for c in counts):
        raise FormatError("RLE 'counts' is empty or has characters outside the COCO alphabet ('0'..'o')")
    if (size[0], size[1]) != (height, width):
        raise FormatError(
            f"RLE size {size[0]}x{size[1]} (h x w) does not match the video's {height}x{width}; "
            "encode the mask at the video's resolution"
        )
    return json.dumps({"size": [size[0], size[1]], "counts": counts}, separators=(",", ":"))


def _check_prompt(kind: str, payload: Mapping[str, Any], video: VideoRow) -> None:
    """Shape and range checks of a prompt payload in video pixels (see `Store.add_prompt`)."""

    def inside(x: Any, y: Any) -> bool:
        numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (x, y))
        return numbers and 0 <= x <= video.width and 0 <= y <= video.height

    if kind == "click":
        points, labels = payload.get("points"), payload.get("labels")
        ok = isinstance(points, list) and isinstance(labels, list) and len(points) == len(labels) > 0
        if not ok or not all(isinstance(p, list | tuple) and len(p) == 2 and inside(*p) for p in points):
            raise PromptError(
                'a click prompt needs {"points": [[x, y], ...], "labels": [1 or 0, ...]} of equal length, '
                f"points inside the {video.width}x{video.height} (w x h) frame; got {dict(payload)!r:.120}"
            )
        if any(label not in (0, 1) for label in labels):
            raise PromptError(f"click labels must be 1 (foreground) or 0 (background), got {labels!r:.80}")
    elif kind == "box":
        box = payload.get("box")
        ok = isinstance(box, list | tuple) and len(box) == 4 and inside(*box[:2]) and inside(*box[2:])
        if not ok or not (box[0] <= box[2] and box[1] <= box[3]):
            raise PromptError(
                f'a box prompt needs {{"box": [x0, y0, x1, y1]}}, x0 <= x1 and y0 <= y1, inside the '
                f"{video.width}x{video.height} (w x h) frame; got {box!r:.80}"
            )
    else:
        try:
            _rle_json(payload.get("rle"), height=video.height, width=video.width)  # type: ignore[arg-type]
        except FormatError as exc:
            raise PromptError(f'a mask prompt needs {{"rle": COCO RLE}} of the video size: {exc}') from exc


def _text(value: str, what: str, max_len: int = 200) -> str:
    if not isinstance(value, str) or not 0 < len(value.strip()) <= max_len:
        raise InvalidEditError(
            f"{what} must be a non-empty string of at most {max_len} characters, got {value!r:.80}"
        )
    return value


# ----------------------------------------------------------------------------------------------- engine
def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # the "begin" hook below emits BEGIN itself
    cursor = dbapi_connection.cursor()
    for pragma in ("foreign_keys = ON", "journal_mode = WAL", "synchronous = FULL", "busy_timeout = 30000"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # Writers take the write lock up front: a deferred read-then-write transaction in WAL
    # mode fails at once (SQLITE_BUSY_SNAPSHOT) instead of waiting when another writer committed.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("masklet_write") else "BEGIN")


def _build_engine(url: URL) -> Engine:
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _normalise_url(url: str | URL) -> URL:
    parsed = make_url(url)
    if parsed.drivername == "postgresql":  # the default driver would be psycopg2; we ship psycopg 3
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


# ------------------------------------------------------------------------------------------- repository
class Store:
    """Projects, videos, masklets, frame masks, prompts and events in one database.

    `url` is any SQLAlchemy URL: `sqlite:///path.db` (WAL journal, foreign keys on) or
    `postgresql+psycopg://user:pw@host/db`. Opening runs the Alembic migrations to head.
    Results are frozen dataclasses; change the database only through the methods.
    """

    def __init__(self, url: str | URL = "sqlite:///masklet.db") -> None:
        self.url = _normalise_url(url)
        self._engine = _build_engine(self.url)
        self._write_engine = self._engine.execution_options(masklet_write=True)
        self._local = threading.local()  # the session of an open transaction(), per thread
        try:
            self.migrate()
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"Store({self.url.render_as_string(hide_password=True)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        self._engine.dispose()

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (the constructor calls this)."""
        from alembic import command
        from alembic.config import Config
        from alembic.util import CommandError

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
        with self._write_engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # two processes opening one new database
                conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7345261)")
            config.attributes["connection"] = conn
            try:
                command.upgrade(config, "head")
            except CommandError as exc:  # e.g. a revision this version of masklet does not know
                raise MaskletError(
                    f"cannot migrate {self!r} to this masklet's schema: {exc}; "
                    "was it written by a newer masklet?"
                ) from exc

    # -------------------------------------------------------------------------------- transactions
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several edits into one transaction: all are committed together, or none."""
        if getattr(self._local, "session", None) is not None:
            yield  # already inside one: join it
            return
        with Session(self._write_engine) as session, session.begin():
            self._local.session = session
            try:
                yield
            finally:
                self._local.session = None

    @contextmanager
    def _write(self) -> Iterator[Session]:
        outer: Session | None = getattr(self._local, "session", None)
        if outer is not None:
            with outer.begin_nested():  # a refused edit inside transaction() undoes only itself
                yield outer
            return
        with Session(self._write_engine) as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        outer: Session | None = getattr(self._local, "session", None)
        if outer is not None:
            yield outer
            return
        with Session(self._engine) as session, session.begin():
            yield session

    def _row(self, session: Session, model: Any, key: int, *, lock: bool = False) -> Any:
        stmt = select(model).where(model.id == key)
        row = session.scalars(stmt.with_for_update() if lock else stmt).one_or_none()
        if row is None:
            what = model.__tablename__[:-1]
            raise NotFoundError(f"no {what} with id {key!r} in {self!r}; list them with Store.list_{what}s")
        return row

    @staticmethod
    def _log(
        session: Session,
        action: str,
        payload: Mapping[str, Any] | None,
        *,
        by: str,
        video: VideoRow | None = None,
        at: datetime | None = None,
        **refs: Any,
    ) -> EventRow:
        """Add an event row; `video` fills in the video and project ids."""
        _text(by, "`by` (who made the change)")
        if video is not None:
            refs.update(video_id=video.id, project_id=video.project_id)
        text = _json(payload, "event payload")
        at = (
            _now()
            if at is None
            else (at.astimezone(timezone.utc) if at.tzinfo else at.replace(tzinfo=timezone.utc))
        )
        row = EventRow(action=action, by=by, at=at, payload=text, **refs)
        session.add(row)
        return row

    def _masklet_rows(self, session: Session, masklet_id: int, *, lock: bool) -> tuple[MaskletRow, VideoRow]:
        masklet = self._row(session, MaskletRow, masklet_id, lock=lock)
        return masklet, self._row(session, VideoRow, masklet.video_id)

    # ------------------------------------------------------------------------------------ projects
    def create_project(self, name: str, *, by: str = "system") -> Project:
        _text(name, "project name")
        with self._write() as s:
            if s.scalar(select(ProjectRow.id).where(ProjectRow.name == name)) is not None:
                raise DuplicateError(f"a project named {name!r} already exists; pick another name")
            row = ProjectRow(name=name, created_at=_now())
            _add(s, row, f"project {name!r}")
            self._log(s, "project.create", {"name": name}, by=by, project_id=row.id)
            return _domain(Project, row)

    def get_project(self, project_id: int) -> Project:
        with self._read() as s:
            row = self._row(s, ProjectRow, project_id)
            return _domain(Project, row)

    def get_project_by_name(self, name: str) -> Project:
        with self._read() as s:
            row = s.scalars(select(ProjectRow).where(ProjectRow.name == name)).one_or_none()
            if row is None:
                raise NotFoundError(f"no project named {name!r}; create it with Store.create_project")
            return _domain(Project, row)

    def list_projects(self) -> list[Project]:
        with self._read() as s:
            return [_domain(Project, r) for r in s.scalars(select(ProjectRow).order_by(ProjectRow.id))]

    # -------------------------------------------------------------------------------------- videos
    def add_video(
        self,
        project_id: int,
        path: str | Path,
        *,
        fps: float,
        width: int,
        height: int,
        frame_count: int,
        content_hash: str,
        by: str = "system",
    ) -> Video:
        """Register a video file; `content_hash` (e.g. sha256 of the file) is unique within a project."""
        for name, value in (("width", width), ("height", height), ("frame_count", frame_count)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise InvalidEditError(f"video {name} must be a positive integer, got {value!r}")
        if not isinstance(fps, int | float) or not fps > 0:
            raise InvalidEditError(f"video fps must be a positive number, got {fps!r}")
        _text(content_hash, "content_hash", 128)
        with self._write() as s:
            self._row(s, ProjectRow, project_id)
            same = select(VideoRow.id).where(
                VideoRow.project_id == project_id, VideoRow.content_hash == content_hash
            )
            if (existing := s.scalar(same)) is not None:
                raise DuplicateError(
                    f"project {project_id} already holds this video (hash {content_hash[:16]}) as video {existing}"
                )
            row = VideoRow(
                project_id=project_id,
                path=str(path),
                fps=float(fps),
                width=width,
                height=height,
                frame_count=frame_count,
                content_hash=content_hash,
                created_at=_now(),
            )
            _add(s, row, f"video {content_hash[:16]} in project {project_id}")
            self._log(s, "video.add", {"path": str(path)}, by=by, video=row)
            return _domain(Video, row)

    def get_video(self, video_id: int) -> Video:
        with self._read() as s:
            return _domain(Video, self._row(s, VideoRow, video_id))

    def list_videos(self, project_id: int | None = None, *, content_hash: str | None = None) -> list[Video]:
        stmt = select(VideoRow).order_by(VideoRow.id)
        if project_id is not None:
            stmt = stmt.where(VideoRow.project_id == project_id)
        if content_hash is not None:
            stmt = stmt.where(VideoRow.content_hash == content_hash)
        with self._read() as s:
            return [_domain(Video, r) for r in s.scalars(stmt)]

    # ------------------------------------------------------------------------------------ masklets
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
        _one_of(type, MASKLET_TYPES, "masklet type")
        meta_text = _json(meta, "masklet meta")
        if category is not None:
            _text(category, "category")
        if obj_id is not None and (isinstance(obj_id, bool) or not isinstance(obj_id, int) or obj_id < 0):
            raise InvalidEditError(f"obj_id must be a non-negative integer, got {obj_id!r}")
        with self._write() as s:
            video = self._row(s, VideoRow, video_id, lock=True)  # serialises object-id allocation
            ids = select(MaskletRow.id).where(MaskletRow.video_id == video_id)
            if obj_id is None:
                top = s.scalar(select(func.max(MaskletRow.obj_id)).where(MaskletRow.video_id == video_id))
                obj_id = 0 if top is None else top + 1
            elif (existing := s.scalar(ids.where(MaskletRow.obj_id == obj_id))) is not None:
                raise DuplicateError(f"video {video_id} already has object id {obj_id} (masklet {existing})")
            now = _now()
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
            _add(s, row, f"object id {obj_id} in video {video_id}")
            payload = {"obj_id": obj_id, "type": type}
            self._log(s, "masklet.create", payload, by=by, video=video, masklet_id=row.id, phase=phase)
            return _masklet(row)

    def get_masklet(self, masklet_id: int) -> Masklet:
        with self._read() as s:
            return _masklet(self._row(s, MaskletRow, masklet_id))

    def list_masklets(
        self,
        *,
        video_id: int | None = None,
        project_id: int | None = None,
        status: str | None = None,
        type: str | None = None,
    ) -> list[Masklet]:
        stmt = select(MaskletRow).order_by(MaskletRow.id)
        if video_id is not None:
            stmt = stmt.where(MaskletRow.video_id == video_id)
        if project_id is not None:
            stmt = stmt.join(VideoRow, VideoRow.id == MaskletRow.video_id).where(
                VideoRow.project_id == project_id
            )
        if status is not None:
            stmt = stmt.where(MaskletRow.status == _one_of(status, STATUSES, "masklet status"))
        if type is not None:
            stmt = stmt.where(MaskletRow.type == _one_of(type, MASKLET_TYPES, "masklet type"))
        with self._read() as s:
            return [_masklet(r) for r in s.scalars(stmt)]

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
        _one_of(status, STATUSES, "masklet status")
        with self._write() as s:
            row, video = self._masklet_rows(s, masklet_id, lock=True)
            _check_version(row.version, expected_version, f"masklet {masklet_id}")
            if status not in TRANSITIONS[row.status]:
                allowed = ", ".join(sorted(TRANSITIONS[row.status]))
                raise InvalidEditError(
                    f"masklet {masklet_id} is {row.status}; it can move to {allowed}, not {status}"
                )
            old, row.status, row.version, row.updated_at = row.status, status, row.version + 1, _now()
            payload = {"from": old, "to": status, "reason": reason}
            self._log(s, "masklet.status", payload, by=by, video=video, masklet_id=masklet_id, phase=phase)
            s.flush()
            return _masklet(row)

    # --------------------------------------------------------------------------------- frame masks
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
    ) -> FrameMask:
        """Save one frame's mask. `expected_version` is the version read; None means "no mask there yet"."""
        versions = None if expected_version is None else {frame: expected_version}
        saved = self.put_frame_masks(
            masklet_id, {frame: rle}, source=source, by=by, expected_versions=versions, phase=phase
        )
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
    ) -> list[FrameMask]:
        """Save masks for several frames in one transaction: all of them, or (on any error) none.

        `masks` maps frame -> COCO RLE; a frame missing from `expected_versions` must have no mask yet.
        """
        _one_of(source, MASK_SOURCES, "mask source")
        expected = dict(expected_versions or {})
        with self._write() as s:
            masklet, video = self._masklet_rows(s, masklet_id, lock=True)
            texts = {
                _check_frame(video, f): _rle_json(r, height=video.height, width=video.width)
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
                _check_version(
                    current[f].version if f in current else None,
                    expected.get(f),
                    f"frame {f} of masklet {masklet_id}",
                )
            now, saved = _now(), []
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
                self._log(
                    s,
                    "mask.put",
                    payload,
                    by=by,
                    video=video,
                    at=now,
                    masklet_id=masklet_id,
                    frame=f,
                    phase=phase,
                )
            masklet.version, masklet.updated_at = masklet.version + 1, now
            _flush(s, f"a mask of masklet {masklet_id}")
            return [_frame_mask(r) for r in saved]

    def get_frame_masks(self, masklet_id: int, *, frames: Iterable[int] | None = None) -> list[FrameMask]:
        """The masklet's saved masks in frame order (only `frames`, if given)."""
        stmt = select(FrameMaskRow).where(FrameMaskRow.masklet_id == masklet_id).order_by(FrameMaskRow.frame)
        if frames is not None:
            stmt = stmt.where(FrameMaskRow.frame.in_([operator.index(f) for f in frames]))
        with self._read() as s:
            self._row(s, MaskletRow, masklet_id)
            return [_frame_mask(r) for r in s.scalars(stmt)]

    def get_frame_mask(self, masklet_id: int, frame: int) -> FrameMask:
        with self._read() as s:
            self._row(s, MaskletRow, masklet_id)
            row = s.get(FrameMaskRow, (masklet_id, operator.index(frame)))
            if row is None:
                raise NotFoundError(f"masklet {masklet_id} has no mask on frame {frame}")
            return _frame_mask(row)

    def delete_frame_mask(
        self, masklet_id: int, frame: int, *, expected_version: int, by: str, phase: int | None = None
    ) -> None:
        with self._write() as s:
            masklet, video = self._masklet_rows(s, masklet_id, lock=True)
            row = s.get(FrameMaskRow, (masklet_id, operator.index(frame)))
            what = f"frame {frame} of masklet {masklet_id}"
            _check_version(None if row is None else row.version, expected_version, what)
            s.delete(row)
            now = _now()
            masklet.version, masklet.updated_at = masklet.version + 1, now
            payload = {"version": expected_version}
            self._log(
                s,
                "mask.delete",
                payload,
                by=by,
                video=video,
                at=now,
                masklet_id=masklet_id,
                frame=frame,
                phase=phase,
            )

    # ------------------------------------------------------------------------------------- prompts
    def add_prompt(
        self,
        masklet_id: int,
        frame: int,
        kind: str,
        payload: Mapping[str, Any],
        *,
        by: str,
        phase: int | None = None,
    ) -> Prompt:
        """Record a prompt: click {"points": [[x, y]], "labels": [1]}, box {"box": [x0, y0, x1, y1]}, mask {"rle": ...}.

        Coordinates are video pixels. The event it logs carries `clicks` (the number of points).
        """
        _one_of(kind, PROMPT_KINDS, "prompt kind")
        text = _json(payload, "prompt payload")
        with self._write() as s:
            _masklet, video = self._masklet_rows(s, masklet_id, lock=False)
            _check_frame(video, frame)
            _check_prompt(kind, payload, video)
            row = PromptRow(
                masklet_id=masklet_id, frame=frame, kind=kind, payload=text, by=by, created_at=_now()
            )
            _add(s, row, "prompt")
            clicks = len(payload["points"]) if kind == "click" else 0
            self._log(
                s,
                "prompt.add",
                {"kind": kind, "prompt_id": row.id, "clicks": clicks},
                by=by,
                video=video,
                at=row.created_at,
                masklet_id=masklet_id,
                frame=frame,
                phase=phase,
            )
            return _domain(Prompt, row, payload=_ro(row.payload))

    def list_prompts(self, masklet_id: int, *, frame: int | None = None) -> list[Prompt]:
        stmt = select(PromptRow).where(PromptRow.masklet_id == masklet_id).order_by(PromptRow.id)
        if frame is not None:
            stmt = stmt.where(PromptRow.frame == frame)
        with self._read() as s:
            self._row(s, MaskletRow, masklet_id)
            return [_domain(Prompt, r, payload=_ro(r.payload)) for r in s.scalars(stmt)]

    # -------------------------------------------------------------------------------------- events
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
        _text(action, "action", 64)
        if duration_s is not None and not duration_s >= 0:
            raise InvalidEditError(f"duration_s must be a non-negative number of seconds, got {duration_s!r}")
        with self._write() as s:
            if masklet_id is not None:
                video_id = _same(
                    video_id,
                    self._row(s, MaskletRow, masklet_id).video_id,
                    "video_id",
                    f"masklet {masklet_id}",
                )
            if video_id is not None:
                video = self._row(s, VideoRow, video_id)
                project_id = _same(project_id, video.project_id, "project_id", f"video {video_id}")
                if frame is not None:
                    _check_frame(video, frame)
            if project_id is not None:
                self._row(s, ProjectRow, project_id)
            row = self._log(
                s,
                action,
                payload,
                by=by,
                at=at,
                project_id=project_id,
                video_id=video_id,
                masklet_id=masklet_id,
                frame=frame,
                phase=phase,
                duration_s=duration_s,
            )
            s.flush()
            return _domain(Event, row, payload=_ro(row.payload))

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
        stmt = select(EventRow).order_by(EventRow.id)
        for column, value in (
            (EventRow.project_id, project_id),
            (EventRow.video_id, video_id),
            (EventRow.masklet_id, masklet_id),
            (EventRow.action, action),
            (EventRow.phase, phase),
            (EventRow.by, by),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        with self._read() as s:
            return [_domain(Event, r, payload=_ro(r.payload)) for r in s.scalars(stmt)]

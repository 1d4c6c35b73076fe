"""The annotation store: a `Store` repository over SQLAlchemy (SQLite by default, PostgreSQL by URL).

Every public edit is one committed transaction (or joins `Store.transaction()`) and
leaves an entry in the append-only event log naming who made it. Frame masks and
masklet status use optimistic concurrency: a write names the version it read, and a
stale one raises `StaleWriteError`. A masklet's version also moves when any of its
frame masks changes, so a review decision refers to exactly the masks the reviewer saw.
Effort accounting reads the events' `action`, `phase`, `frame` and `duration_s` (which
`add_prompt` and `put_frame_mask(s)` take, so that annotator time can ride on the edit itself);
other measures (clicks, the tool used) go into the payload, e.g. `{"clicks": 3}`. The store's own
actions: project.create, video.add {path, meta if given}, video.meta {meta, merge},
masklet.create, masklet.status {from, to, reason}, mask.put {source, version},
mask.delete {version}, prompt.add {kind, prompt_id, clicks}.

Here: opening the database, migrating it, and transactions. The tables are in `schema.py`,
the returned records in `records.py`, the checks and errors in `store_checks.py`, and the
methods, by group, in `store_projects.py`, `store_masklets.py`, `store_masks.py` and
`store_events.py` (their shared row helpers in `store_base.py`); the public names are
re-exported from here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.orm import Session

from masklet.engine.records import Event, FrameMask, Job, Masklet, Project, Prompt, User, Video
from masklet.engine.schema import (
    MASK_SOURCES,
    MASKLET_TYPES,
    PROMPT_KINDS,
    STATUSES,
    Base,
    EventRow,
    FrameMaskRow,
    MaskletRow,
    ProjectRow,
    PromptRow,
    UTCDateTime,
    VideoRow,
)
from masklet.engine.store_checks import DuplicateError, InvalidEditError, StaleWriteError
from masklet.engine.store_events import EventMethods
from masklet.engine.store_jobs import JobMethods
from masklet.engine.store_masklets import TRANSITIONS, MaskletMethods
from masklet.engine.store_masks import MaskMethods
from masklet.engine.store_projects import ProjectMethods
from masklet.engine.store_users import UserMethods
from masklet.errors import MaskletError

__all__ = [
    "MASK_SOURCES",
    "MASKLET_TYPES",
    "MIGRATIONS_DIR",
    "PROMPT_KINDS",
    "STATUSES",
    "TRANSITIONS",
    "Base",
    "DuplicateError",
    "Event",
    "EventRow",
    "FrameMask",
    "FrameMaskRow",
    "InvalidEditError",
    "Job",
    "Masklet",
    "MaskletRow",
    "Project",
    "ProjectRow",
    "Prompt",
    "PromptRow",
    "StaleWriteError",
    "Store",
    "UTCDateTime",
    "User",
    "Video",
    "VideoRow",
]

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


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
class Store(ProjectMethods, MaskletMethods, MaskMethods, EventMethods, UserMethods, JobMethods):
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
        with self._session(self._write_engine) as session, session.begin():
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
        with self._session(self._write_engine) as session, session.begin():
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        outer: Session | None = getattr(self._local, "session", None)
        if outer is not None:
            yield outer
            return
        with self._session(self._engine) as session, session.begin():
            yield session

    def _session(self, engine: Engine) -> Session:
        return Session(engine, info={"store": self})  # `store_base.get_row` names the store in errors

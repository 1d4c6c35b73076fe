"""Alembic revisions past the first: data carried over on upgrade, the old schema back on downgrade.

Run as the alembic command line would (a plain engine, no store pragmas), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, inspect, text
from sqlalchemy.pool import NullPool

from masklet.engine.store import MIGRATIONS_DIR, Store


@pytest.fixture
def alembic_at(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Config, Engine]]:
    monkeypatch.delenv("MASKLET_DB_URL", raising=False)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", store_url.replace("%", "%%"))
    engine = create_engine(store_url, poolclass=NullPool)
    yield config, engine
    engine.dispose()


def schema_of(engine: Engine) -> dict[str, Any]:
    """Every table's columns, keys, indexes and checks, in a form two databases can be compared by."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for table in sorted(insp.get_table_names()):
        out[table] = {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(table)],
            "pk": insp.get_pk_constraint(table)["constrained_columns"],
            "fks": sorted((f["name"], tuple(f["constrained_columns"])) for f in insp.get_foreign_keys(table)),
            "unique": sorted(
                (u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(table)
            ),
            "indexes": sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table)),
            "checks": sorted(c["name"] for c in insp.get_check_constraints(table)),
        }
    return out


def add_rows_at_0001(engine: Engine) -> None:
    """A project, two videos, and SA-V imports as revision 0001's code logged them."""
    at = "2026-01-01 00:00:00"
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO projects (id, name, created_at) VALUES (1, 'p', :at)"), {"at": at})
        for vid in (1, 2):
            conn.execute(
                text(
                    "INSERT INTO videos (id, project_id, path, fps, width, height, frame_count, content_hash,"
                    " created_at) VALUES (:id, 1, :path, 24, 8, 6, 10, :hash, :at)"
                ),
                {"id": vid, "path": f"v{vid}.mp4", "hash": f"h{vid}", "at": at},
            )
        events = [
            ("import.sav", 1, {"file": "a.json", "sav": {"video_id": "old", "video_split": "train"}}),
            ("import.davis", 1, {"file": "d", "masks": 3}),
            ("import.sav", 1, {"file": "b.json", "sav": {"video_id": "sav_1", "extra": {"k": [1]}}}),
            ("import.sav", 2, {"file": "c.json"}),  # no "sav" object: nothing to carry over
        ]
        for i, (action, vid, payload) in enumerate(events, start=1):
            conn.execute(
                text(
                    "INSERT INTO events (id, at, by, action, project_id, video_id, payload)"
                    " VALUES (:id, :at, 'me', :action, 1, :vid, :payload)"
                ),
                {"id": i, "at": at, "action": action, "vid": vid, "payload": json.dumps(payload)},
            )


def test_0002_moves_the_latest_sav_fields_into_video_meta(alembic_at, store_url: str) -> None:
    config, engine = alembic_at
    command.upgrade(config, "0001")
    add_rows_at_0001(engine)
    command.upgrade(config, "head")
    with Store(store_url) as store:
        first, second = store.list_videos(1)
        assert dict(first.meta) == {"sav": {"video_id": "sav_1", "extra": {"k": [1]}}}  # the latest import
        assert dict(second.meta) == {}
        assert len(store.list_events(action="import.sav")) == 3  # the log itself is left as it was


def test_0002_downgrade_restores_the_0001_schema_and_keeps_rows(alembic_at) -> None:
    config, engine = alembic_at
    command.upgrade(config, "0001")
    before = schema_of(engine)
    add_rows_at_0001(engine)
    command.upgrade(config, "head")
    assert "meta" in [c["name"] for c in inspect(engine).get_columns("videos")]
    command.downgrade(config, "0001")
    assert schema_of(engine) == before
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, path FROM videos ORDER BY id")).all()
        assert rows == [(1, "v1.mp4"), (2, "v2.mp4")]
        assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 4

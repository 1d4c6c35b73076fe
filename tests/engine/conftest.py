"""Store fixtures: every test gets a fresh database, SQLite (a file in tmp_path) or PostgreSQL.

PostgreSQL cases are marked `postgres` and need MASKLET_TEST_POSTGRES_URL (`source .ci/postgres.sh`
sets it); each gets its own schema, dropped afterwards, so tests share no state.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from masklet.engine.store import Store, Video

PG_ENV = "MASKLET_TEST_POSTGRES_URL"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def store_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A URL of an empty database of either backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'masklet.db'}"
        return
    base = os.environ.get(PG_ENV)
    if not base:
        pytest.skip(f"{PG_ENV} is not set (run `source .ci/postgres.sh`)")
    schema = f"test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
        admin.dispose()


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with Store(store_url) as opened:
        yield opened


@pytest.fixture
def video(store: Store) -> Video:
    """A 10-frame 6x8 (h x w) video in a fresh project."""
    project = store.create_project("demo")
    return store.add_video(
        project.id, "clips/demo.mp4", fps=24.0, width=8, height=6, frame_count=10, content_hash="a" * 64
    )

"""Shared test fixtures: small random-weight models, paths to committed test data, databases.

A test that takes `store_url` runs once per backend: SQLite (a file in tmp_path) and PostgreSQL.
One whose cost is the model and whose writes another test makes on both takes SQLite only, with
`@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)`. PostgreSQL cases are marked
`postgres` and need MASKLET_TEST_POSTGRES_URL (`source .ci/postgres.sh` sets it); each gets its own
schema, dropped afterwards, so tests share no state.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PG_ENV = "MASKLET_TEST_POSTGRES_URL"
DATA = REPO / "tests" / "data"
# the seeded weight rule shared with the fixture scripts (torch only)
sys.path.insert(0, str(REPO / "tools" / "parity"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def small_model():
    """sam2.1 tiny at 128-px input with random weights: real architecture, fast."""
    import torch

    from masklet.build import build_sam2

    torch.manual_seed(0)
    return build_sam2("sam2.1_hiera_t", image_size=128)


@pytest.fixture(scope="session")
def encoded_frames() -> dict:
    """Image features by (weights, pixels) digest, shared by the full-size video parity tests.

    Each bedroom frame is encoded once instead of once per propagation and per scenario
    (about 2 s a frame at 1024 px on two cores); tracking itself is never cached.
    """
    return {}


@pytest.fixture(scope="module", autouse=True)
def _intra_op_threads(request):
    """Pin torch's intra-op threads for a module marked `pytest.mark.threads(n)`, then restore them.

    Results depend on the count at the 1e-6..1e-4 level (reductions split differently), so a
    module that compares exact numbers or replays fixtures must not inherit another's setting.
    """
    marker = request.node.get_closest_marker("threads")
    if marker is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(marker.args[0])
    yield
    torch.set_num_threads(before)


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
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

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

"""Alembic environment for the annotation store.

`Store.migrate()` hands over its open connection (`config.attributes["connection"]`). From the
command line (`alembic -c src/masklet/engine/migrations/alembic.ini upgrade head`) the URL comes
from `-x url=...`, then `MASKLET_DB_URL`, then the ini's `sqlalchemy.url`.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from masklet.engine.schema import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or os.environ.get("MASKLET_DB_URL")
        or config.get_main_option("sqlalchemy.url")
        or "sqlite:///masklet.db"
    )


def _options(dialect_name: str) -> dict[str, object]:
    # Batch mode lets SQLite (no ALTER of constraints) take table changes by copy-and-move.
    return {
        "target_metadata": target_metadata,
        "compare_type": True,
        "render_as_batch": dialect_name == "sqlite",
    }


def _run(connection: Connection) -> None:
    context.configure(connection=connection, **_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:  # called from Store.migrate()
        _run(connection)
        return
    if config.config_file_name is not None:
        fileConfig(config.config_file_name, disable_existing_loggers=False)
    url = _url()
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **_options(url.split(":")[0].split("+")[0]))
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(url, poolclass=NullPool)
    with engine.connect() as connection:
        _run(connection)
    engine.dispose()


main()

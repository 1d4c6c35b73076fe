"""Video meta: a JSON object per video, filled from the SA-V fields earlier imports logged.

Before this revision an SA-V import kept the file's video-level fields (duration, environment,
split, extras, number of annotated frames) only in the payload of its `import.sav` event, under
"sav"; exports read the latest such event. Upgrading copies that latest payload's "sav" object
into the video's meta (`{"sav": {...}}`), where imports now write it. Downgrading drops the
column; the events keep what they held.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Lightweight tables of the columns used here, as they stand at this revision.
_events = sa.table(
    "events",
    sa.column("id", sa.Integer()),
    sa.column("action", sa.String()),
    sa.column("video_id", sa.Integer()),
    sa.column("payload", sa.Text()),
)
_videos = sa.table("videos", sa.column("id", sa.Integer()), sa.column("meta", sa.Text()))


def _backfill() -> None:
    conn = op.get_bind()
    imports = sa.select(_events.c.video_id, _events.c.payload).where(
        _events.c.action == "import.sav", _events.c.video_id.is_not(None)
    )
    latest: dict[int, dict[str, object]] = {}
    for video_id, payload in conn.execute(imports.order_by(_events.c.id)):
        try:
            sav = json.loads(payload).get("sav")
        except (ValueError, AttributeError):  # not a JSON object: nothing to carry over
            continue
        if isinstance(sav, dict):
            latest[video_id] = sav  # a later import of the video replaces an earlier one
    for video_id, sav in latest.items():
        meta = json.dumps({"sav": sav}, separators=(",", ":"))
        conn.execute(sa.update(_videos).where(_videos.c.id == video_id).values(meta=meta))


def upgrade() -> None:
    with op.batch_alter_table("videos") as batch:
        batch.add_column(sa.Column("meta", sa.Text(), server_default="{}", nullable=False))
    _backfill()


def downgrade() -> None:
    with op.batch_alter_table("videos") as batch:  # SQLite: copies the table without the column
        batch.drop_column("meta")

"""Initial schema: projects, videos, masklets, frame masks, prompts, events.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Timestamps are UTC; masklet.engine.schema.UTCDateTime adds the zone back on SQLite.
TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects")),
        sa.UniqueConstraint("name", name=op.f("uq_projects_name")),
    )
    op.create_table(
        "videos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("path", sa.Text(), nullable=False),
        sa.Column("fps", sa.Float(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("frame_count", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=128), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "fps > 0 AND width > 0 AND height > 0 AND frame_count > 0", name=op.f("ck_videos_positive")
        ),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_videos_project_id_projects")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_videos")),
        sa.UniqueConstraint("project_id", "content_hash", name=op.f("uq_videos_project_id_content_hash")),
    )
    op.create_index(op.f("ix_videos_project_id"), "videos", ["project_id"])
    op.create_table(
        "masklets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("video_id", sa.Integer(), nullable=False),
        sa.Column("obj_id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=200), nullable=True),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("meta", sa.Text(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "status IN ('draft', 'in_review', 'accepted', 'rejected')", name=op.f("ck_masklets_status")
        ),
        sa.CheckConstraint("type IN ('manual', 'auto')", name=op.f("ck_masklets_type")),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], name=op.f("fk_masklets_video_id_videos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_masklets")),
        sa.UniqueConstraint("video_id", "obj_id", name=op.f("uq_masklets_video_id_obj_id")),
    )
    op.create_index(op.f("ix_masklets_status"), "masklets", ["status"])
    op.create_index(op.f("ix_masklets_video_id"), "masklets", ["video_id"])
    op.create_table(
        "frame_masks",
        sa.Column("masklet_id", sa.Integer(), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("rle", sa.Text(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint(
            "source IN ('manual', 'click_model', 'propagated', 'auto')", name=op.f("ck_frame_masks_source")
        ),
        sa.CheckConstraint("frame >= 0", name=op.f("ck_frame_masks_frame")),
        sa.ForeignKeyConstraint(
            ["masklet_id"], ["masklets.id"], name=op.f("fk_frame_masks_masklet_id_masklets")
        ),
        sa.PrimaryKeyConstraint("masklet_id", "frame", name=op.f("pk_frame_masks")),
    )
    op.create_table(
        "prompts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("masklet_id", sa.Integer(), nullable=False),
        sa.Column("frame", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.CheckConstraint("kind IN ('click', 'box', 'mask')", name=op.f("ck_prompts_kind")),
        sa.ForeignKeyConstraint(["masklet_id"], ["masklets.id"], name=op.f("fk_prompts_masklet_id_masklets")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_prompts")),
    )
    op.create_index(op.f("ix_prompts_masklet_id"), "prompts", ["masklet_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", TIMESTAMP, nullable=False),
        sa.Column("by", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("video_id", sa.Integer(), nullable=True),
        sa.Column("masklet_id", sa.Integer(), nullable=True),
        sa.Column("frame", sa.Integer(), nullable=True),
        sa.Column("phase", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["masklet_id"], ["masklets.id"], name=op.f("fk_events_masklet_id_masklets")),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_events_project_id_projects")),
        sa.ForeignKeyConstraint(["video_id"], ["videos.id"], name=op.f("fk_events_video_id_videos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_events")),
    )
    for column in ("action", "at", "masklet_id", "project_id", "video_id"):
        op.create_index(op.f(f"ix_events_{column}"), "events", [column])


def downgrade() -> None:
    for table in ("events", "prompts", "frame_masks", "masklets", "videos", "projects"):
        op.drop_table(table)  # their indexes go with them

"""Initial schema: input frames, rejections, model versions and events, products, runs, minute states.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As service.db.types: JSONB on PostgreSQL, JSON text elsewhere; aware UTC datetimes.
JSONDoc = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def UTC() -> sa.DateTime:  # noqa: N802 - reads like a type in the tables below
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "input_frames",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("site", sa.String(2), nullable=False),
        sa.Column("site_letter", sa.String(1), nullable=False),
        sa.Column("obs_time", UTC(), nullable=False),
        sa.Column("obs_minute", UTC(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("raw_uri", sa.Text(), nullable=True),
        sa.Column("header_generation", sa.String(16), nullable=True),
        sa.Column("quality", JSONDoc, nullable=True),
        sa.Column("accepted", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_input_frames"),
        sa.UniqueConstraint("filename", name="uq_input_frames_filename"),
    )
    op.create_index("ix_input_frames_obs_minute", "input_frames", ["obs_minute"])

    op.create_table(
        "minute_states",
        sa.Column("obs_minute", UTC(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTC(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("updated_at", UTC(), nullable=False),
        sa.CheckConstraint(
            "state IN ('pending', 'done', 'skipped', 'rejected', 'failed')",
            name="ck_minute_states_state",
        ),
        sa.PrimaryKeyConstraint("obs_minute", name="pk_minute_states"),
    )
    op.create_index("ix_minute_states_state", "minute_states", ["state"])

    op.create_table(
        "model_versions",
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("onnx_uri", sa.Text(), nullable=False),
        sa.Column("report_uri", sa.Text(), nullable=True),
        sa.Column("metrics", JSONDoc, nullable=False),
        sa.Column("config", JSONDoc, nullable=True),
        sa.Column("lineage", JSONDoc, nullable=False),
        sa.Column("preprocess_version", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTC(), nullable=False),
        sa.Column("promoted_at", UTC(), nullable=True),
        sa.Column("gate", JSONDoc, nullable=True),
        sa.CheckConstraint(
            "status IN ('candidate', 'production', 'retired', 'rejected')",
            name="ck_model_versions_status",
        ),
        sa.PrimaryKeyConstraint("version", name="pk_model_versions"),
        sa.UniqueConstraint("sha256", name="uq_model_versions_sha256"),
    )
    op.create_index("ix_model_versions_status", "model_versions", ["status"])

    op.create_table(
        "rejections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(64), nullable=True),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("site", sa.String(2), nullable=True),
        sa.Column("obs_time", UTC(), nullable=True),
        sa.Column("obs_minute", UTC(), nullable=True),
        sa.Column("stage", sa.String(32), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_rejections"),
    )
    op.create_index("ix_rejections_filename", "rejections", ["filename"])
    op.create_index("ix_rejections_obs_minute", "rejections", ["obs_minute"])

    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("obs_minute", UTC(), nullable=False),
        sa.Column("started_at", UTC(), nullable=False),
        sa.Column("finished_at", UTC(), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('product', 'skipped', 'rejected', 'failed')",
            name="ck_runs_outcome",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_obs_minute", "runs", ["obs_minute"])

    op.create_table(
        "model_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("detail", JSONDoc, nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(
            ["version"], ["model_versions.version"], name="fk_model_events_version_model_versions"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_events"),
    )
    op.create_index("ix_model_events_version", "model_events", ["version"])

    op.create_table(
        "products",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("input_frame_id", sa.Integer(), nullable=False),
        sa.Column("obs_time", UTC(), nullable=False),
        sa.Column("obs_minute", UTC(), nullable=False),
        sa.Column("site", sa.String(2), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        sa.Column("preprocess_version", sa.String(16), nullable=False),
        sa.Column("fits_uri", sa.Text(), nullable=False),
        sa.Column("png_uri", sa.Text(), nullable=True),
        sa.Column("fits_sha256", sa.String(64), nullable=False),
        sa.Column("png_sha256", sa.String(64), nullable=True),
        sa.Column("quality", JSONDoc, nullable=True),
        sa.Column("verification", JSONDoc, nullable=True),
        sa.Column("timings", JSONDoc, nullable=True),
        sa.Column("created_at", UTC(), nullable=False),
        sa.ForeignKeyConstraint(
            ["input_frame_id"], ["input_frames.id"], name="fk_products_input_frame_id_input_frames"
        ),
        sa.ForeignKeyConstraint(
            ["model_version"],
            ["model_versions.version"],
            name="fk_products_model_version_model_versions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_products"),
        sa.UniqueConstraint(
            "input_frame_id", "model_version", name="uq_products_input_frame_id_model_version"
        ),
        sa.UniqueConstraint(
            "obs_minute", "model_version", name="uq_products_obs_minute_model_version"
        ),
    )
    op.create_index("ix_products_created_at", "products", ["created_at"])
    op.create_index("ix_products_obs_minute", "products", ["obs_minute"])


def downgrade() -> None:
    for table in (
        "products",
        "model_events",
        "runs",
        "rejections",
        "model_versions",
        "minute_states",
        "input_frames",
    ):
        op.drop_table(table)

"""Frames and products name their source and station by strings, not one GONG letter.

``input_frames``, ``products`` and ``rejections`` gain ``source`` (existing rows: ``gong``,
the only source there was); ``site`` widens from GONG's two letters to 16 characters;
``input_frames.site_letter`` goes (the GONG station table knows it); a frame's file name is
unique per source. Existing rows are kept.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GONG_LETTER = {"BB": "B", "CT": "C", "LE": "L", "ML": "M", "TD": "T", "UD": "U"}


def upgrade() -> None:
    with op.batch_alter_table("input_frames") as batch:
        batch.add_column(sa.Column("source", sa.String(32), nullable=False, server_default="gong"))
        batch.alter_column("site", existing_type=sa.String(2), type_=sa.String(16), existing_nullable=False)
        batch.drop_constraint("uq_input_frames_filename", type_="unique")
        batch.create_unique_constraint("uq_input_frames_source_filename", ["source", "filename"])
        batch.drop_column("site_letter")
    with op.batch_alter_table("input_frames") as batch:
        batch.alter_column("source", existing_type=sa.String(32), server_default=None)
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("source", sa.String(32), nullable=False, server_default="gong"))
        batch.alter_column("site", existing_type=sa.String(2), type_=sa.String(16), existing_nullable=False)
    with op.batch_alter_table("products") as batch:
        batch.alter_column("source", existing_type=sa.String(32), server_default=None)
    with op.batch_alter_table("rejections") as batch:
        batch.add_column(sa.Column("source", sa.String(32), nullable=True))
        batch.alter_column("site", existing_type=sa.String(2), type_=sa.String(16), existing_nullable=True)
    op.execute("UPDATE rejections SET source = 'gong' WHERE filename IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table("rejections") as batch:
        batch.drop_column("source")
        batch.alter_column("site", existing_type=sa.String(16), type_=sa.String(2), existing_nullable=True)
    with op.batch_alter_table("products") as batch:
        batch.drop_column("source")
        batch.alter_column("site", existing_type=sa.String(16), type_=sa.String(2), existing_nullable=False)
    with op.batch_alter_table("input_frames") as batch:
        batch.add_column(sa.Column("site_letter", sa.String(1), nullable=True))
    for code, letter in GONG_LETTER.items():
        op.execute(f"UPDATE input_frames SET site_letter = '{letter}' WHERE site = '{code}'")
    with op.batch_alter_table("input_frames") as batch:
        batch.alter_column("site_letter", existing_type=sa.String(1), nullable=False)
        batch.drop_constraint("uq_input_frames_source_filename", type_="unique")
        batch.create_unique_constraint("uq_input_frames_filename", ["filename"])
        batch.drop_column("source")
        batch.alter_column("site", existing_type=sa.String(16), type_=sa.String(2), existing_nullable=False)

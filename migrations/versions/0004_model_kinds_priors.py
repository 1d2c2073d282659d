"""Two kinds of model, one production version each; products say which served them and from what prior.

``model_versions.kind`` (``halpha`` | ``nowcast``; existing rows: ``halpha``, the only kind
there was). ``products`` gain ``model_kind`` and the prior's provenance (``prior_obs``,
``prior_age_h``, ``prior_source``, ``prior_sha256``; or ``prior_note``: why there was
none), and an index on ``obs_time`` (the feed's time filters). Existing rows are kept.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="halpha"))
        batch.create_check_constraint("ck_model_versions_kind", "kind IN ('halpha', 'nowcast')")
        batch.create_index("ix_model_versions_kind", ["kind"])
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("model_kind", sa.String(16), nullable=True))
        batch.add_column(sa.Column("prior_obs", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("prior_age_h", sa.Float(), nullable=True))
        batch.add_column(sa.Column("prior_source", sa.Text(), nullable=True))
        batch.add_column(sa.Column("prior_sha256", sa.String(64), nullable=True))
        batch.add_column(sa.Column("prior_note", sa.Text(), nullable=True))
        batch.create_index("ix_products_obs_time", ["obs_time"])
    op.execute("UPDATE products SET model_kind = 'halpha'")


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_index("ix_products_obs_time")
        for column in ("prior_note", "prior_sha256", "prior_source", "prior_age_h", "prior_obs", "model_kind"):
            batch.drop_column(column)
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_index("ix_model_versions_kind")
        batch.drop_constraint("ck_model_versions_kind", type_="check")
        batch.drop_column("kind")

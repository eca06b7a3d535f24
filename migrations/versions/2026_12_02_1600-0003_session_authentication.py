"""sessions remember how they began: authenticated_at and amr

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("authenticated_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("amr", sa.JSON(), nullable=True))
    # Every session so far began with a password.
    op.execute("UPDATE sessions SET authenticated_at = created_at, amr = '[\"pwd\"]'")
    with op.batch_alter_table("sessions") as batch:
        batch.alter_column("authenticated_at", existing_type=sa.DateTime(timezone=True), nullable=False)
        batch.alter_column("amr", existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("amr")
        batch.drop_column("authenticated_at")

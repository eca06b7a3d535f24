"""deletion grace period: when an account deleted with a grace period is to be erased

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("erasure_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index("ix_users_erasure_at", "users", ["erasure_at"])


def downgrade() -> None:
    op.drop_index("ix_users_erasure_at", table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("erasure_at")

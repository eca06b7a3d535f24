"""the KPIs: an index of the security events by type and time, for counting a type's events in a period

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_security_events_type_at", "security_events", ["type", "at"])


def downgrade() -> None:
    op.drop_index("ix_security_events_type_at", table_name="security_events")

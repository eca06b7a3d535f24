"""roles: named permission sets, the users holding them, and the actor of an administrator's event

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 08:00:00
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The built-in role, frozen here as it was when this migration was written (the code treats ``admin`` as holding
# every permission it knows, whatever this row says; a later permission needs no migration for admins).
ADMIN_PERMISSIONS = "users:read users:write users:disable users:delete sessions:revoke events:read roles:manage"


def upgrade() -> None:
    roles = op.create_table(
        "roles",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("description", sa.String(256), nullable=False),
        sa.Column("permissions", sa.String(512), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_roles"),
    )
    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role_name", sa.String(32), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_user_roles_user_id_users", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["role_name"], ["roles.name"], name="fk_user_roles_role_name_roles", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "role_name", name="pk_user_roles"),
    )
    op.create_index("ix_user_roles_role_name", "user_roles", ["role_name"])
    with op.batch_alter_table("security_events") as batch:
        batch.add_column(sa.Column("actor_id", sa.Uuid(), nullable=True))
    op.create_index("ix_security_events_actor_id_id", "security_events", ["actor_id", "id"])
    op.create_index("ix_security_events_type_id", "security_events", ["type", "id"])
    now = datetime.now(UTC)
    if op.get_context().dialect.name == "sqlite":
        now = now.replace(tzinfo=None)  # SQLite keeps naive UTC (tables.UTCDateTime)
    op.bulk_insert(
        roles,
        [
            {
                "name": "admin",
                "description": "Every permission.",
                "permissions": ADMIN_PERMISSIONS,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )


def downgrade() -> None:
    op.drop_index("ix_security_events_type_id", table_name="security_events")
    op.drop_index("ix_security_events_actor_id_id", table_name="security_events")
    with op.batch_alter_table("security_events") as batch:
        batch.drop_column("actor_id")
    op.drop_index("ix_user_roles_role_name", table_name="user_roles")
    op.drop_table("user_roles")
    op.drop_table("roles")

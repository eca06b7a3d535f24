"""sign-in through identity providers: identities, trips to a provider under way, login codes; accounts without a
password; sessions and sign-in challenges remember the provider

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 23:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.alter_column("password_hash", existing_type=sa.String(255), nullable=True)
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("provider", sa.String(64), nullable=True))
    with op.batch_alter_table("mfa_challenges") as batch:
        batch.add_column(sa.Column("provider", sa.String(64), nullable=True))
    op.create_table(
        "identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("email", sa.String(254), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_identities_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_identities"),
        sa.UniqueConstraint("provider", "subject", name="uq_identities_provider_subject"),
    )
    op.create_index("ix_identities_user_id", "identities", ["user_id"])
    op.create_table(
        "oauth_authorizations",
        sa.Column("state_digest", sa.String(64), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("browser_digest", sa.String(64), nullable=True),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_oauth_authorizations_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("state_digest", name="pk_oauth_authorizations"),
    )
    op.create_index("ix_oauth_authorizations_user_id", "oauth_authorizations", ["user_id"])
    op.create_index("ix_oauth_authorizations_expires_at", "oauth_authorizations", ["expires_at"])
    op.create_table(
        "login_codes",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("redirect_uri", sa.String(2048), nullable=False),
        sa.Column("code_challenge", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_login_codes_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("digest", name="pk_login_codes"),
    )
    op.create_index("ix_login_codes_user_id", "login_codes", ["user_id"])
    op.create_index("ix_login_codes_expires_at", "login_codes", ["expires_at"])


def downgrade() -> None:
    # An account made through a provider has no password: the old schema cannot hold it, and deleting the account
    # (or inventing a password) is not a migration's decision.
    without = op.get_bind().execute(sa.text("SELECT count(*) FROM users WHERE password_hash IS NULL")).scalar_one()
    if without:
        raise RuntimeError(
            f"cannot downgrade below 0009: {without} account(s) have no password (made through an identity "
            "provider); delete them or have them set a password first"
        )
    op.drop_index("ix_login_codes_expires_at", table_name="login_codes")
    op.drop_index("ix_login_codes_user_id", table_name="login_codes")
    op.drop_table("login_codes")
    op.drop_index("ix_oauth_authorizations_expires_at", table_name="oauth_authorizations")
    op.drop_index("ix_oauth_authorizations_user_id", table_name="oauth_authorizations")
    op.drop_table("oauth_authorizations")
    op.drop_index("ix_identities_user_id", table_name="identities")
    op.drop_table("identities")
    with op.batch_alter_table("mfa_challenges") as batch:
        batch.drop_column("provider")
    with op.batch_alter_table("sessions") as batch:
        batch.drop_column("provider")
    with op.batch_alter_table("users") as batch:
        batch.alter_column("password_hash", existing_type=sa.String(255), nullable=False)

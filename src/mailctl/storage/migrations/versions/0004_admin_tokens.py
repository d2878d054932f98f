"""Admin tokens: every issued token by id, and a per-admin counter that revokes them all.

Revision ID: 0004_admin_tokens
Revises: 0003_login_throttle
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_admin_tokens"
down_revision = "0003_login_throttle"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("admins") as batch:
        batch.add_column(
            sa.Column("token_generation", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_table(
        "admin_tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("admin_id", Id, nullable=False),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("revoked_reason", sa.String(16), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("user_agent", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("jti", name="pk_admin_tokens"),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["admins.id"],
            name="fk_admin_tokens_admin_id_admins",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_admin_tokens_admin_id", "admin_tokens", ["admin_id"])
    op.create_index("ix_admin_tokens_expires_at", "admin_tokens", ["expires_at"])


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping one first fails on MariaDB when a
    # foreign key uses it (error 1553).
    op.drop_table("admin_tokens")
    with op.batch_alter_table("admins") as batch:
        batch.drop_column("token_generation")

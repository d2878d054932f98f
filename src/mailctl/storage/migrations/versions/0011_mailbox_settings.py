"""Mailbox self-service: forwarding, auto-reply, and the tokens mailbox owners log in for.

Revision ID: 0011_mailbox_settings
Revises: 0010_quotas
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_mailbox_settings"
down_revision = "0010_quotas"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _user_key(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"],
        ["virtual_users.id"],
        name=f"fk_{table}_user_id_virtual_users",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "mailbox_forwarding",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("destinations", sa.Text(), nullable=False),
        sa.Column("keep_copy", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_mailbox_forwarding"),
        _user_key("mailbox_forwarding"),
    )
    op.create_table(
        "mailbox_autoreply",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("subject", sa.String(255), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("starts_on", sa.Date(), nullable=True),
        sa.Column("ends_on", sa.Date(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_mailbox_autoreply"),
        _user_key("mailbox_autoreply"),
    )
    op.create_table(
        "mailbox_tokens",
        sa.Column("jti", sa.String(64), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("password_digest", sa.String(64), nullable=False),
        sa.Column("issued_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=False),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("revoked_reason", sa.String(16), nullable=True),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("jti", name="pk_mailbox_tokens"),
        _user_key("mailbox_tokens"),
    )
    op.create_index("ix_mailbox_tokens_user_id", "mailbox_tokens", ["user_id"])
    op.create_index("ix_mailbox_tokens_expires_at", "mailbox_tokens", ["expires_at"])


def downgrade() -> None:
    # Indexes go with their table: MariaDB refuses to drop one a foreign key uses.
    op.drop_table("mailbox_tokens")
    op.drop_table("mailbox_autoreply")
    op.drop_table("mailbox_forwarding")

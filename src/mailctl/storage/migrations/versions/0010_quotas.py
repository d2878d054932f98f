"""Quotas: a storage quota and message count per mailbox, limits per domain, and the
usage Dovecot's quota_clone writes back for each mailbox.

NULL or 0 in a quota or limit column means unlimited. ``mailbox_usage`` is written by
Dovecot (through its dict-sql proxy), keyed by the mailbox's address, and only read by
mailctl.

Revision ID: 0010_quotas
Revises: 0008_two_factor
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_quotas"
down_revision = "0008_two_factor"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("virtual_users") as batch:
        batch.add_column(sa.Column("quota_bytes", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("quota_messages", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("virtual_domains") as batch:
        batch.add_column(sa.Column("max_mailboxes", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_aliases", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("max_quota_bytes", sa.BigInteger(), nullable=True))
    op.create_table(
        "mailbox_usage",
        sa.Column("username", sa.String(254), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("messages", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("username", name="pk_mailbox_usage"),
    )


def downgrade() -> None:
    op.drop_table("mailbox_usage")
    with op.batch_alter_table("virtual_domains") as batch:
        batch.drop_column("max_quota_bytes")
        batch.drop_column("max_aliases")
        batch.drop_column("max_mailboxes")
    with op.batch_alter_table("virtual_users") as batch:
        batch.drop_column("quota_messages")
        batch.drop_column("quota_bytes")

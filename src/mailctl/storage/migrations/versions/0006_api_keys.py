"""API keys: long-lived, scoped keys for scripts, stored as hashes, and their domains.

Revision ID: 0006_api_keys
Revises: 0005_admin_roles
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_api_keys"
down_revision = "0005_admin_roles"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("admin_id", Id, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("all_domains", sa.Boolean(), nullable=False),
        sa.Column("networks", sa.Text(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("revoked_at", sa.Double(), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_id", name="uq_api_keys_key_id"),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["admins.id"], name="fk_api_keys_admin_id_admins", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_api_keys_admin_id", "api_keys", ["admin_id"])
    op.create_table(
        "api_key_domains",
        sa.Column("key_id", Id, nullable=False),
        sa.Column("domain_id", Id, nullable=False),
        sa.PrimaryKeyConstraint("key_id", "domain_id", name="pk_api_key_domains"),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name="fk_api_key_domains_key_id_api_keys",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["virtual_domains.id"],
            name="fk_api_key_domains_domain_id_virtual_domains",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_api_key_domains_domain_id", "api_key_domains", ["domain_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping one first fails on MariaDB when a
    # foreign key uses it (error 1553).
    op.drop_table("api_key_domains")
    op.drop_table("api_keys")

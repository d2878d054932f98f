"""Admin roles: superadmins and domain admins, and the domains granted to the latter.

Revision ID: 0005_admin_roles
Revises: 0004_admin_tokens
Create Date: 2026-12-07
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_admin_roles"
down_revision = "0004_admin_tokens"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # Every admin so far held every right: each stays a superadmin.
    with op.batch_alter_table("admins") as batch:
        batch.add_column(
            sa.Column("role", sa.String(16), nullable=False, server_default="superadmin")
        )
        batch.add_column(
            sa.Column("disabled", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "admin_domains",
        sa.Column("admin_id", Id, nullable=False),
        sa.Column("domain_id", Id, nullable=False),
        sa.PrimaryKeyConstraint("admin_id", "domain_id", name="pk_admin_domains"),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["admins.id"],
            name="fk_admin_domains_admin_id_admins",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["virtual_domains.id"],
            name="fk_admin_domains_domain_id_virtual_domains",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_admin_domains_domain_id", "admin_domains", ["domain_id"])


def downgrade() -> None:
    # Dropping a table drops its indexes; dropping one first fails on MariaDB when a
    # foreign key uses it (error 1553).
    op.drop_table("admin_domains")
    with op.batch_alter_table("admins") as batch:
        batch.drop_column("disabled")
        batch.drop_column("role")

"""Core tables: domains, mailboxes and aliases for the daemons; admins, audit log, secrets.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "virtual_domains",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("created_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_virtual_domains"),
        sa.UniqueConstraint("name", name="uq_virtual_domains_name"),
    )
    op.create_table(
        "virtual_users",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("domain_id", Id, nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("password", sa.String(255), nullable=False),
        sa.Column("created_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_virtual_users"),
        sa.UniqueConstraint("email", name="uq_virtual_users_email"),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["virtual_domains.id"],
            name="fk_virtual_users_domain_id_virtual_domains",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_virtual_users_domain_id", "virtual_users", ["domain_id"])
    op.create_table(
        "virtual_aliases",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("domain_id", Id, nullable=False),
        sa.Column("source", sa.String(254), nullable=False),
        sa.Column("destination", sa.String(254), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_virtual_aliases"),
        sa.UniqueConstraint("source", "destination", name="uq_virtual_aliases_pair"),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["virtual_domains.id"],
            name="fk_virtual_aliases_domain_id_virtual_domains",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_virtual_aliases_domain_id", "virtual_aliases", ["domain_id"])
    op.create_index("ix_virtual_aliases_source", "virtual_aliases", ["source"])
    op.create_table(
        "admins",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("password", sa.String(255), nullable=False),
        sa.Column("created_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_admins"),
        sa.UniqueConstraint("username", name="uq_admins_username"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("at", When, nullable=False),
        sa.Column("admin", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(320), nullable=False),
        sa.Column("client_address", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_log"),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_app_secrets"),
    )


def downgrade() -> None:
    op.drop_table("app_secrets")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("admins")
    op.drop_table("virtual_aliases")
    op.drop_table("virtual_users")
    op.drop_table("virtual_domains")

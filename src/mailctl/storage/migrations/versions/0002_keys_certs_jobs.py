"""DKIM keys, TLS certificates, ACME accounts and challenges, background jobs.

Revision ID: 0002_keys_certs_jobs
Revises: 0001_core
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_keys_certs_jobs"
down_revision = "0001_core"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "dkim_keys",
        sa.Column("id", Id, autoincrement=True),
        sa.Column("domain_id", Id, nullable=False),
        sa.Column("selector", sa.String(63), nullable=False),
        sa.Column("key_type", sa.String(16), nullable=False),
        sa.Column("private_key", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dkim_keys"),
        sa.UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_selector"),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["virtual_domains.id"],
            name="fk_dkim_keys_domain_id_virtual_domains",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_dkim_keys_domain_id", "dkim_keys", ["domain_id"])
    op.create_table(
        "certificates",
        sa.Column("id", Id, autoincrement=True),
        sa.Column("name", sa.String(253), nullable=False),
        sa.Column("chain_pem", sa.Text(), nullable=False),
        sa.Column("key_pem", sa.Text(), nullable=False),
        sa.Column("not_after", When, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("previous_chain_pem", sa.Text(), nullable=True),
        sa.Column("previous_key_pem", sa.Text(), nullable=True),
        sa.Column("updated_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_certificates"),
        sa.UniqueConstraint("name", name="uq_certificates_name"),
    )
    op.create_table(
        "acme_accounts",
        sa.Column("id", Id, autoincrement=True),
        sa.Column("directory_url", sa.String(512), nullable=False),
        sa.Column("key_pem", sa.Text(), nullable=False),
        sa.Column("created_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_acme_accounts"),
        sa.UniqueConstraint("directory_url", name="uq_acme_accounts_directory_url"),
    )
    op.create_table(
        "acme_challenges",
        sa.Column("token", sa.String(255), nullable=False),
        sa.Column("key_authorization", sa.Text(), nullable=False),
        sa.Column("hostname", sa.String(253), nullable=False),
        sa.Column("created_at", When, nullable=True),
        sa.PrimaryKeyConstraint("token", name="pk_acme_challenges"),
    )
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("target", sa.String(253), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("lock_key", sa.String(300), nullable=True),
        sa.Column("created_at", When, nullable=True),
        sa.Column("updated_at", When, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("lock_key", name="uq_jobs_lock_key"),
    )


def downgrade() -> None:
    op.drop_table("jobs")
    op.drop_table("acme_challenges")
    op.drop_table("acme_accounts")
    op.drop_table("certificates")
    op.drop_index("ix_dkim_keys_domain_id", table_name="dkim_keys")
    op.drop_table("dkim_keys")

"""Two-factor login: each admin's sealed TOTP secret, its recovery codes, server settings.

Revision ID: 0008_two_factor
Revises: 0007_audit_domain
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_two_factor"
down_revision = "0007_audit_domain"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "admin_totp",
        sa.Column("admin_id", Id, nullable=False),
        sa.Column("secret", sa.String(255), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("confirmed_at", sa.Double(), nullable=True),
        sa.Column("last_step", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("admin_id", name="pk_admin_totp"),
        sa.ForeignKeyConstraint(
            ["admin_id"], ["admins.id"], name="fk_admin_totp_admin_id_admins", ondelete="CASCADE"
        ),
    )
    op.create_table(
        "admin_recovery_codes",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("admin_id", Id, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("used_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_admin_recovery_codes"),
        sa.ForeignKeyConstraint(
            ["admin_id"],
            ["admins.id"],
            name="fk_admin_recovery_codes_admin_id_admins",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_admin_recovery_codes_admin_id", "admin_recovery_codes", ["admin_id"])
    op.create_table(
        "app_settings",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_app_settings"),
    )


def downgrade() -> None:
    op.drop_table("app_settings")
    # Its index goes with the table: MariaDB refuses to drop an index a foreign key uses.
    op.drop_table("admin_recovery_codes")
    op.drop_table("admin_totp")

"""Audit log: the domain each entry concerns, so a domain's history can be read (and shown
to its domain admins) after the domain itself is gone.

Revision ID: 0007_audit_domain
Revises: 0006_api_keys
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_audit_domain"
down_revision = "0006_api_keys"
branch_labels = None
depends_on = None

# Entries whose target is a domain's name.
DOMAIN_TARGETS = (
    "create_domain",
    "delete_domain",
    "restore_domain",
    "export_domain",
    "import_domain",
    "create_dkim_key",
    "rotate_dkim_key",
    "delete_dkim_key",
)
# Entries whose target is an address of the domain (local@domain, or @domain for an alias
# of every address): the domain is what follows its one "@".
ADDRESS_TARGETS = (
    "create_user",
    "change_password",
    "delete_user",
    "restore_user",
    "create_alias",
    "delete_alias",
)
# Entries about an admin whose detail names the domain: "domain=example.com".
GRANTS = ("grant_domain", "revoke_domain")
GRANT_PREFIX = "domain="


def _after(column: sa.ColumnElement[str], position: sa.ColumnElement[int]) -> sa.ColumnElement[str]:
    """The text of ``column`` after ``position``, cut to the width of the domain column."""
    return sa.func.substr(column, position + 1, 253)


def upgrade() -> None:
    with op.batch_alter_table("audit_log") as batch:
        batch.add_column(sa.Column("domain", sa.String(253), nullable=True))
    # A domain's entries newest first: an index seek on the name, read backwards by id.
    op.create_index("ix_audit_log_domain", "audit_log", ["domain", "id"])

    audit = sa.table(
        "audit_log",
        sa.column("action", sa.String),
        sa.column("target", sa.String),
        sa.column("detail", sa.Text),
        sa.column("domain", sa.String),
    )
    # Where the "@" is: each dialect names the function its own way.
    if op.get_bind().dialect.name == "postgresql":
        at_sign = sa.func.strpos(audit.c.target, "@")
    else:
        at_sign = sa.func.instr(audit.c.target, "@")
    op.execute(
        audit.update()
        .where(audit.c.action.in_(DOMAIN_TARGETS))
        .values(domain=sa.func.substr(audit.c.target, 1, 253))
    )
    op.execute(
        audit.update()
        .where(audit.c.action.in_(ADDRESS_TARGETS) & audit.c.target.contains("@"))
        .values(domain=_after(audit.c.target, at_sign))
    )
    op.execute(
        audit.update()
        .where(audit.c.action.in_(GRANTS) & audit.c.detail.startswith(GRANT_PREFIX))
        .values(domain=_after(audit.c.detail, sa.literal(len(GRANT_PREFIX))))
    )


def downgrade() -> None:
    # The index first: MariaDB would keep it on the remaining id column, SQLite refuses to
    # drop an indexed column.
    op.drop_index("ix_audit_log_domain", table_name="audit_log")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("domain")

"""List revisions: a counter that every write to the listed tables raises, by triggers.

The listings (GET /domains, GET /users/:id) keep their bodies per server process for as
long as this counter stands still. It is raised by the database itself, in the writing
transaction, so no writer can miss it: any mailctl process or replica, the CLI, an older
or newer version, SQL typed by hand. Cascaded deletes are covered by the trigger on the
parent row (MariaDB fires none for cascades). One writer is out of reach: MariaDB's
TRUNCATE TABLE fires no trigger. mailctl never truncates these tables; after a TRUNCATE
typed by hand on MariaDB, restart the servers (PostgreSQL's TRUNCATE has its trigger).

A later migration that rebuilds one of these tables on SQLite (Alembic's batch mode
copies it into a new table) drops its triggers and must create them again;
tests/unit/test_list_revisions.py fails until it does.

Revision ID: 0012_list_revisions
Revises: 0011_mailbox_settings
Create Date: 2026-12-08
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0012_list_revisions"
down_revision = "0011_mailbox_settings"
branch_labels = None
depends_on = None

# The row of list_revisions the triggers raise (tables.LISTINGS).
BUMP = "UPDATE list_revisions SET revision = revision + 1 WHERE name = 'domains'"
# What a listing shows: the domains, their mailboxes, the grants and key bindings that
# narrow a caller's view; and the deletes whose cascades MariaDB makes without triggers.
WATCHED = {
    "virtual_domains": ("INSERT", "UPDATE", "DELETE"),
    "virtual_users": ("INSERT", "UPDATE", "DELETE"),
    "admin_domains": ("INSERT", "UPDATE", "DELETE"),
    "api_key_domains": ("INSERT", "UPDATE", "DELETE"),
    "admins": ("DELETE",),
    "api_keys": ("DELETE",),
}
FUNCTION = "bump_list_revision"
# PostgreSQL: set for the rest of a transaction that raised the revision.
FLAG = "mailctl.list_revision_raised"


def _name(table: str, event: str | None = None) -> str:
    return f"{FUNCTION}_{table}" + (f"_{event.lower()}" if event else "")


def upgrade() -> None:
    dialect = op.get_context().dialect.name
    if dialect in ("mariadb", "mysql"):
        # MariaDB commits each DDL statement: its triggers go first, so that a server
        # that refuses them (binary logging on, no SUPER) leaves nothing of this step
        # behind and `mailctl init` can simply run again. A trigger names its table only
        # when it runs.
        _row_triggers("FOR EACH ROW {bump}")
    revisions = op.create_table(
        "list_revisions",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("revision", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_list_revisions"),
    )
    # Counted from the microseconds of now, not from 0: a table made again (a downgrade and
    # an upgrade) starts past every revision the old one reached, so a process that kept
    # bodies of the old one cannot take the new one's for it.
    op.bulk_insert(revisions, [{"name": "domains", "revision": time.time_ns() // 1000}])
    if dialect == "sqlite":
        _row_triggers("BEGIN {bump}; END")
    elif dialect == "postgresql":
        # Once per transaction: every UPDATE of one row in one transaction leaves a new
        # version that the next one walks past, so ten thousand single-row inserts took
        # 6 s where they took 0.5 s. One raise is enough, as the whole transaction becomes
        # visible with it; the flag is the transaction's own (a savepoint rolled back
        # takes it back with the raise).
        op.execute(
            f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            f"IF current_setting('{FLAG}', true) IS DISTINCT FROM 'on' THEN {BUMP}; "
            f"PERFORM set_config('{FLAG}', 'on', true); END IF; RETURN NULL; END $$"
        )
        for table, events in WATCHED.items():
            # TRUNCATE too: it fires no DELETE trigger (a cascade truncates the children).
            when = " OR ".join((*events, "TRUNCATE"))
            op.execute(
                f"CREATE TRIGGER {_name(table)} AFTER {when} ON {table} "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()"
            )


def _row_triggers(body: str) -> None:
    """One trigger per table and event: SQLite and MariaDB have row triggers only."""
    for table, events in WATCHED.items():
        for event in events:
            op.execute(
                f"CREATE TRIGGER {_name(table, event)} AFTER {event} ON {table} "
                + body.format(bump=BUMP)
            )


def downgrade() -> None:
    dialect = op.get_context().dialect.name
    for table, events in WATCHED.items():
        if dialect == "postgresql":
            op.execute(f"DROP TRIGGER IF EXISTS {_name(table)} ON {table}")
            continue
        for event in events:
            op.execute(f"DROP TRIGGER IF EXISTS {_name(table, event)}")
    if dialect == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
    op.drop_table("list_revisions")

"""Migration 0007 adds the audit log's domain, fills it in for old entries, and goes back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from tests.backends import fresh_database

from mailctl.storage.database import Database
from mailctl.storage.tables import Base

BEFORE = "0006_api_keys"
AFTER = "0007_audit_domain"

# (action, target, detail) as the services wrote them before the column existed, and the
# domain the migration gives each.
OLD_ENTRIES = [
    ("create_domain", "example.com", None, "example.com"),
    ("create_user", "alice@example.com", None, "example.com"),
    ("change_password", "alice@example.com", None, "example.com"),
    ("create_alias", "@other.example", "to alice@example.com", "other.example"),
    ("delete_alias", "info@other.example", "to alice@example.com", "other.example"),
    ("create_dkim_key", "example.com", "selector mail, ed25519", "example.com"),
    ("export_domain", "example.com", None, "example.com"),
    ("import_domain", "imported.example", "2 mailboxes, 4 files", "imported.example"),
    ("restore_user", "bob@example.com", "20261201T000000-mailbox-bob", "example.com"),
    ("delete_domain", "gone.example", "0 mailboxes, 0 aliases", "gone.example"),
    ("grant_domain", "owner", "domain=example.com", "example.com"),
    ("revoke_domain", "owner", "domain=other.example", "other.example"),
    ("create_admin", "bob@example.com", "role=superadmin", None),
    ("create_api_key", "owner", "key=abc access=read days=30 domains=*", None),
    ("upload_certificate", "mail.example.com", "sha256 ab, valid until 2027-01-01", None),
    ("logout", "0123456789abcdef", None, None),
]


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[Database]:
    """A database of its own, at the revision before the audit log had a domain."""
    with fresh_database(backend, tmp_path, migrated=False) as url:
        db = Database(url)
        try:
            _migrate(db, "upgrade", BEFORE)
            yield db
        finally:
            db.dispose()


def _migrate(db: Database, way: str, revision: str) -> None:
    config = db._alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, way)(config, revision)


def _columns(db: Database) -> set[str]:
    return {column["name"] for column in sa.inspect(db.engine).get_columns("audit_log")}


def _indexes(db: Database) -> set[str]:
    return {str(index["name"]) for index in sa.inspect(db.engine).get_indexes("audit_log")}


@pytest.mark.own_database
def test_upgrade_fills_in_the_domain_and_downgrade_takes_it_away(database: Database) -> None:
    """Old entries about a domain, a mailbox, an alias or a grant get that domain; those
    about admins, keys, tokens and certificates none. Down and up again both work."""
    audit = sa.table(
        "audit_log",
        sa.column("at", sa.DateTime(timezone=True)),
        sa.column("admin", sa.String),
        sa.column("action", sa.String),
        sa.column("target", sa.String),
        sa.column("detail", sa.Text),
    )
    now = datetime.now(UTC)
    with database.engine.begin() as connection:
        connection.execute(
            audit.insert(),
            [
                {"at": now, "admin": "admin", "action": a, "target": t, "detail": d}
                for a, t, d, _ in OLD_ENTRIES
            ],
        )

    _migrate(database, "upgrade", AFTER)
    assert "domain" in _columns(database)
    assert "ix_audit_log_domain" in _indexes(database)
    with database.engine.connect() as connection:
        found = connection.execute(
            sa.text("SELECT action, target, domain FROM audit_log ORDER BY id")
        ).all()
    assert [tuple(row) for row in found] == [(a, t, domain) for a, t, _, domain in OLD_ENTRIES]

    _migrate(database, "downgrade", BEFORE)
    assert "domain" not in _columns(database)
    assert "ix_audit_log_domain" not in _indexes(database)
    assert set(_indexes(database)) == {"ix_audit_log_at"}

    _migrate(database, "upgrade", "head")
    assert "domain" in _columns(database)


@pytest.mark.own_database
def test_the_migrated_audit_log_is_the_table_the_model_describes(database: Database) -> None:
    """After the migration, the audit log's columns and indexes are those of tables.py."""
    _migrate(database, "upgrade", "head")
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    about_audit = [d for d in differences if "audit_log" in repr(d)]
    assert about_audit == []

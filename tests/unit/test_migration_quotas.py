"""Migration 0010_quotas goes down and up again on every backend, keeping the rows it
does not own."""

from __future__ import annotations

import pytest
from alembic import command
from sqlalchemy import inspect, text

from mailctl.storage.database import Database

pytestmark = pytest.mark.own_database


def _migrate(database: Database, target: str, down: bool = False) -> None:
    config = database._alembic_config()
    with database.engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, target)


def test_quotas_go_down_and_up_again(database_url: str) -> None:
    database = Database(database_url)
    try:
        with database.engine.begin() as conn:
            conn.execute(text("INSERT INTO virtual_domains (name) VALUES ('example.com')"))
        _migrate(database, "0008_two_factor", down=True)
        tables = inspect(database.engine)
        assert "mailbox_usage" not in tables.get_table_names()
        assert "quota_bytes" not in {c["name"] for c in tables.get_columns("virtual_users")}
        _migrate(database, "head")
        tables = inspect(database.engine)
        assert "mailbox_usage" in tables.get_table_names()
        assert {"max_mailboxes", "max_aliases", "max_quota_bytes"} <= {
            c["name"] for c in tables.get_columns("virtual_domains")
        }
        with database.engine.connect() as conn:
            names = conn.execute(text("SELECT name FROM virtual_domains")).scalars().all()
        assert names == ["example.com"]
    finally:
        database.dispose()

"""Migration 0008_two_factor: it follows 0006 alone, goes down and up again, and leaves the
tables exactly as the models declare them. Per backend: the DDL differs on each."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from mailctl.storage.database import Database
from mailctl.storage.tables import Base

TABLES = {"admin_totp", "admin_recovery_codes", "app_settings"}


def test_revision_follows_0007_and_nothing_else() -> None:
    """The migration follows the audit log's domain column, and depends on nothing else."""
    script = ScriptDirectory.from_config(Database("sqlite://")._alembic_config())
    revision = script.get_revision("0008_two_factor")
    assert revision is not None
    assert revision.down_revision == "0007_audit_domain"
    assert not revision.dependencies


@pytest.mark.own_database
def test_down_and_up_again(database_url: str) -> None:
    """Downgrading to 0007 drops the three tables; upgrading brings them back as declared."""
    database = Database(database_url)
    try:
        config = database._alembic_config()
        with database.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "0007_audit_domain")
        assert not TABLES & set(inspect(database.engine).get_table_names())
        database.upgrade()
        assert set(inspect(database.engine).get_table_names()) >= TABLES
        with database.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        ours = [d for d in differences if TABLES & _names(d)]
        assert ours == []
    finally:
        database.dispose()


def _names(difference: object) -> set[str]:
    """The table names an autogenerate difference mentions (as text or as objects)."""
    if isinstance(difference, str):
        return {difference}
    if isinstance(difference, list | tuple):
        return set().union(*(_names(part) for part in difference))
    found = {
        getattr(difference, "name", None),
        getattr(getattr(difference, "table", None), "name", None),
    }
    return {name for name in found if isinstance(name, str)}

"""Every migration goes down and up again on each backend, one revision at a time.

An admin who rolls mailctl back runs `alembic downgrade`: each step must work on the
database it runs on (MariaDB refuses to drop an index a foreign key uses, for one), and
the schema that comes back up must be the one the models declare.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from tests.backends import fresh_database

from mailctl.storage.database import Database
from mailctl.storage.tables import Base


@pytest.fixture
def database(backend: str, tmp_path: Path) -> Iterator[Database]:
    """A database of its own, migrated to the newest revision."""
    with fresh_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            yield db
        finally:
            db.dispose()


def _migrate(db: Database, way: str, revision: str) -> None:
    config = db._alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, way)(config, revision)


def _tables(db: Database) -> set[str]:
    return set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}


def _current(db: Database) -> str | None:
    with db.engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def test_each_revision_goes_down_and_up_again(database: Database) -> None:
    """Down one step at a time to an empty database, then up to the newest: the tables
    of the models are all back, and nothing else."""
    script = ScriptDirectory.from_config(database._alembic_config())
    newest_first = [revision.revision for revision in script.walk_revisions()]
    assert len(newest_first) >= 8
    assert _current(database) == newest_first[0]
    for older in [*newest_first[1:], None]:
        _migrate(database, "downgrade", older or "base")
        assert _current(database) == older
    assert _tables(database) == set()
    _migrate(database, "upgrade", "head")
    assert _current(database) == newest_first[0]
    assert _tables(database) == set(Base.metadata.tables)

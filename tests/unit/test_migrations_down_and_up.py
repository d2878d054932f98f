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

from mailctl.errors import UnavailableError
from mailctl.storage.database import NOT_SET_UP, NOT_UP_TO_DATE, Database, newest_revision
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


def test_the_newest_revision_is_alembics_head() -> None:
    """What the schema check compares with, read from the files, is Alembic's own head."""
    script = ScriptDirectory.from_config(Database("sqlite://")._alembic_config())
    assert newest_revision() == script.get_current_head()


def test_the_schema_check_says_what_to_run(database: Database) -> None:
    """A database one migration behind, or without tables, is refused with `mailctl init`."""
    database.require_schema()
    script = ScriptDirectory.from_config(database._alembic_config())
    _migrate(database, "downgrade", "-1")
    with pytest.raises(UnavailableError) as behind:
        database.require_schema()
    assert behind.value.message == NOT_UP_TO_DATE
    _migrate(database, "downgrade", "base")
    with database.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE alembic_version"))
    with pytest.raises(UnavailableError) as empty:
        database.require_schema()
    assert empty.value.message == NOT_SET_UP
    _migrate(database, "upgrade", "head")
    database.require_schema()
    assert _current(database) == script.get_current_head()

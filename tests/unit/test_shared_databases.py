"""The database shared by the tests of a process comes back empty, migrated, ids from 1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, insert, select, text
from tests.backends import SharedDatabases

from mailctl.storage.database import Database
from mailctl.storage.tables import Admin, Domain, User


def _fill(url: str) -> tuple[int, int]:
    """Add a domain with a mailbox, and an admin; return the ids of the domain and mailbox."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            domain = conn.execute(insert(Domain).values(name="example.com")).inserted_primary_key
            user = conn.execute(
                insert(User).values(domain_id=domain[0], email="a@example.com", password="{PLAIN}x")
            ).inserted_primary_key
            conn.execute(insert(Admin).values(username="admin", password="{PLAIN}x"))
        return int(domain[0]), int(user[0])
    finally:
        engine.dispose()


def _rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return sum(
                conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (Domain, User, Admin)
            )
    finally:
        engine.dispose()


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[SharedDatabases]:
    """Databases of this test's own, so the session's shared ones are not disturbed."""
    (tmp_path / "databases").mkdir()
    databases = SharedDatabases(tmp_path / "databases")
    yield databases
    databases.drop()


def _schema_is_current(url: str) -> bool:
    database = Database(url)
    try:
        current, head = database.schema_state()
    finally:
        database.dispose()
    return current is not None and current == head


def test_each_test_gets_it_empty_and_migrated_with_ids_from_one(
    backend: str, tmp_path: Path, shared: SharedDatabases
) -> None:
    """What one test wrote is gone for the next, whose ids start at 1 again."""
    for n in range(3):
        test_dir = tmp_path / f"test{n}"
        test_dir.mkdir()
        url = shared.clean(backend, test_dir)
        assert _rows(url) == 0
        assert _schema_is_current(url)
        assert _fill(url) == (1, 1)


def test_a_test_that_dropped_a_table_does_not_break_the_next(
    backend: str, tmp_path: Path, shared: SharedDatabases
) -> None:
    """A test that drops a table leaves the next one a whole schema."""
    first = tmp_path / "first"
    first.mkdir()
    url = shared.clean(backend, first)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE virtual_aliases"))
    engine.dispose()
    second = tmp_path / "second"
    second.mkdir()
    url = shared.clean(backend, second)
    assert _schema_is_current(url)
    assert _fill(url) == (1, 1)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM virtual_aliases")).scalar_one() == 0
    engine.dispose()

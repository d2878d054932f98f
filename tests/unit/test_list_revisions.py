"""The database raises the list revision on every write to what a listing shows.

Per backend: the triggers are each dialect's own DDL (row triggers on SQLite and MariaDB,
statement triggers on PostgreSQL), and so are their cascades. The writes here are plain
SQL on a connection of their own, as another replica, an older version or a person at
the database's prompt would make them: nothing of mailctl's code runs with them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Connection, Engine, create_engine, make_url, text
from tests.backends import MARIADB_SERVER, PG_SERVER, fresh_database

from mailctl.storage.database import Database

# What each backend must hold at the newest revision; a later migration that rebuilds
# one of these tables (Alembic's batch mode on SQLite copies it into a new one) drops its
# triggers, and this list says so.
WATCHED = {
    "virtual_domains": ("insert", "update", "delete"),
    "virtual_users": ("insert", "update", "delete"),
    "admin_domains": ("insert", "update", "delete"),
    "api_key_domains": ("insert", "update", "delete"),
    "admins": ("delete",),
    "api_keys": ("delete",),
}


def _revision(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT revision FROM list_revisions")).scalar_one())


def _triggers(engine: Engine) -> set[tuple[str, str]]:
    """(table, event) of every trigger that raises the revision."""
    backend = engine.dialect.name
    with engine.connect() as conn:
        if backend == "sqlite":
            rows = conn.execute(
                text("SELECT tbl_name, sql FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            return {
                (table, event)
                for table, sql in rows
                for event in ("insert", "update", "delete")
                if f"AFTER {event.upper()} ON" in sql and "list_revisions" in sql
            }
        if backend == "postgresql":
            rows = conn.execute(
                text(
                    "SELECT event_object_table, lower(event_manipulation) "
                    "FROM information_schema.triggers WHERE action_statement LIKE "
                    "'%bump_list_revision%'"
                )
            ).all()
        else:
            rows = conn.execute(
                text(
                    "SELECT event_object_table, lower(event_manipulation) "
                    "FROM information_schema.triggers WHERE trigger_schema = DATABASE() "
                    "AND action_statement LIKE '%list_revisions%'"
                )
            ).all()
    return {(table, event) for table, event in rows}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = create_engine(database_url)
    yield made
    made.dispose()


def _write(engine: Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))


def _setup(conn: Connection) -> None:
    conn.execute(text("INSERT INTO virtual_domains (id, name) VALUES (1, 'a.example')"))
    conn.execute(
        text(
            "INSERT INTO virtual_users (id, domain_id, email, password) "
            "VALUES (1, 1, 'x@a.example', '{PLAIN}x')"
        )
    )
    conn.execute(
        text(
            "INSERT INTO admins (id, username, password, token_generation, role, disabled) "
            "VALUES (7, 'owner', '{PLAIN}x', 0, 'domain_admin', false)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO api_keys (id, key_id, secret_hash, admin_id, name, read_only, "
            "all_domains, created_at, created_by) "
            "VALUES (3, 'k', 'h', 7, 'key', false, false, 0, 'owner')"
        )
    )


def test_the_triggers_stand_at_the_newest_revision(engine: Engine) -> None:
    """Every table a listing reads has its triggers, after every migration."""
    expected = {(table, event) for table, events in WATCHED.items() for event in events}
    assert expected <= _triggers(engine)


WRITES: list[tuple[str, tuple[str, ...]]] = [
    ("a domain added", ("INSERT INTO virtual_domains (id, name) VALUES (2, 'b.example')",)),
    ("a domain renamed", ("UPDATE virtual_domains SET name = 'c.example' WHERE id = 1",)),
    (
        "a mailbox added",
        (
            "INSERT INTO virtual_users (id, domain_id, email, password) "
            "VALUES (2, 1, 'y@a.example', '{PLAIN}y')",
        ),
    ),
    ("a mailbox changed", ("UPDATE virtual_users SET password = '{PLAIN}z' WHERE id = 1",)),
    ("a mailbox deleted", ("DELETE FROM virtual_users WHERE id = 1",)),
    ("a domain granted", ("INSERT INTO admin_domains (admin_id, domain_id) VALUES (7, 1)",)),
    ("a key bound", ("INSERT INTO api_key_domains (key_id, domain_id) VALUES (3, 1)",)),
    ("an admin deleted", ("DELETE FROM admins WHERE id = 7",)),
    ("a key deleted", ("DELETE FROM api_keys WHERE id = 3",)),
    ("a domain deleted", ("DELETE FROM virtual_domains WHERE id = 1",)),
]


@pytest.mark.parametrize(("what", "statements"), WRITES, ids=[w[0] for w in WRITES])
def test_a_write_raises_the_revision(engine: Engine, what: str, statements: tuple[str]) -> None:
    """Each kind of write, made in SQL past mailctl, raises the revision once it commits."""
    with engine.begin() as conn:
        _setup(conn)
    before = _revision(engine)
    _write(engine, *statements)
    assert _revision(engine) > before, what


def test_an_ungrant_and_an_unbinding_raise_it(engine: Engine) -> None:
    """Taking a domain back from an admin or a key changes what it lists."""
    with engine.begin() as conn:
        _setup(conn)
    _write(
        engine,
        "INSERT INTO admin_domains (admin_id, domain_id) VALUES (7, 1)",
        "INSERT INTO api_key_domains (key_id, domain_id) VALUES (3, 1)",
    )
    for table in ("admin_domains", "api_key_domains"):
        before = _revision(engine)
        _write(engine, f"DELETE FROM {table}")  # noqa: S608 (a fixed table name)
        assert _revision(engine) > before, table


def test_reads_and_other_tables_leave_it(engine: Engine) -> None:
    """Reading, and writing what no listing shows (aliases, the audit log), change nothing."""
    with engine.begin() as conn:
        _setup(conn)
    before = _revision(engine)
    with engine.begin() as conn:
        conn.execute(text("SELECT * FROM virtual_domains")).all()
        conn.execute(
            text(
                "INSERT INTO virtual_aliases (domain_id, source, destination) "
                "VALUES (1, 'p@a.example', 'x@a.example')"
            )
        )
    assert _revision(engine) == before


def test_a_write_rolled_back_leaves_it(engine: Engine) -> None:
    """The revision moves with the transaction: a write undone leaves it as it was."""
    before = _revision(engine)
    with engine.connect() as conn:
        conn.execute(text("INSERT INTO virtual_domains (name) VALUES ('b.example')"))
        conn.rollback()
    assert _revision(engine) == before


def test_each_transaction_of_one_connection_raises_it(engine: Engine) -> None:
    """Raised once per transaction is enough, but in every transaction: nothing of the
    first (PostgreSQL's flag that it raised it) is left for the next on that connection."""
    with engine.connect() as conn:
        for n in range(3):
            before = _revision(engine)
            names = {"name": f"d{n}.example", "other": f"e{n}.example"}
            conn.execute(text("INSERT INTO virtual_domains (name) VALUES (:name)"), names)
            conn.execute(text("UPDATE virtual_domains SET name = :other WHERE id = 1"), names)
            conn.commit()
            assert _revision(engine) > before


def test_a_savepoint_rolled_back_takes_back_only_its_own_raise(engine: Engine) -> None:
    """A write undone to a savepoint, then another one kept: the revision is raised."""
    with engine.begin() as conn:
        _setup(conn)
    before = _revision(engine)
    with engine.connect() as conn:
        savepoint = conn.begin_nested()
        conn.execute(text("INSERT INTO virtual_domains (id, name) VALUES (2, 'b.example')"))
        savepoint.rollback()
        conn.execute(text("DELETE FROM virtual_users WHERE id = 1"))
        conn.commit()
    assert _revision(engine) > before


def _migrate(db: Database, way: str, revision: str) -> None:
    config = db._alembic_config()
    with db.engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, way)(config, revision)


@pytest.mark.own_database
def test_down_and_up_again_starts_past_the_old_revision(backend: str, tmp_path: Path) -> None:
    """Down to the revision before, the counter and its triggers are gone; up again, it
    starts past every value the old one reached, so no process mistakes the two."""
    with fresh_database(backend, tmp_path) as url:
        db = Database(url)
        try:
            _write(db.engine, "INSERT INTO virtual_domains (name) VALUES ('a.example')")
            old = _revision(db.engine)
            _migrate(db, "downgrade", "0011_mailbox_settings")
            assert _triggers(db.engine) == set()
            _write(db.engine, "INSERT INTO virtual_domains (name) VALUES ('b.example')")
            db.upgrade()
            assert _revision(db.engine) > old
            before = _revision(db.engine)
            _write(db.engine, "DELETE FROM virtual_domains")
            assert _revision(db.engine) > before
        finally:
            db.dispose()


@pytest.mark.own_database
@pytest.mark.parametrize("backend", ["postgresql", "mariadb"])
def test_the_deployment_user_can_migrate(backend: str) -> None:
    """As the README's deployment makes it (PostgreSQL: a role owning its database, no
    superuser; MariaDB: a user with every privilege on its database only), `mailctl init`
    creates the triggers, and a write of that user raises the revision."""
    name = f"mailctl_lc_{os.getpid()}"
    server_url = f"{PG_SERVER}/postgres" if backend == "postgresql" else f"{MARIADB_SERVER}/"
    server = create_engine(server_url, isolation_level="AUTOCOMMIT")
    password = "deployment-password-1"
    base = make_url(PG_SERVER if backend == "postgresql" else MARIADB_SERVER)
    url = base.set(username=name, password=password, database=name).render_as_string(
        hide_password=False
    )
    with server.connect() as conn:
        if backend == "postgresql":
            conn.execute(text(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
            conn.execute(text(f"CREATE DATABASE {name} OWNER {name}"))
        else:
            conn.execute(text(f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"))
            conn.execute(text(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'"))
            conn.execute(text(f"GRANT ALL PRIVILEGES ON {name}.* TO '{name}'@'%'"))
    try:
        db = Database(url)
        try:
            db.upgrade()
            before = _revision(db.engine)
            _write(db.engine, "INSERT INTO virtual_domains (name) VALUES ('a.example')")
            assert _revision(db.engine) > before
        finally:
            db.dispose()
    finally:
        with server.connect() as conn:
            if backend == "postgresql":
                conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                conn.execute(text(f"DROP ROLE IF EXISTS {name}"))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
                conn.execute(text(f"DROP USER IF EXISTS '{name}'@'%'"))
        server.dispose()

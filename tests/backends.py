"""Test databases on SQLite, PostgreSQL and MariaDB.

Most tests share one migrated database per backend and test process, emptied before each
test (``SharedDatabases``); a test that needs a database of its own (unmigrated, given
roles or grants, dropped at the end) asks ``fresh_database`` for one.
"""

from __future__ import annotations

import itertools
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    Engine,
    MetaData,
    create_engine,
    delete,
    exists,
    insert,
    literal,
    select,
    text,
    union_all,
)
from sqlalchemy.exc import SQLAlchemyError

from mailctl.storage.database import Database
from mailctl.storage.tables import LISTINGS, ListRevision

ALL_BACKENDS = ("sqlite", "postgresql", "mariadb")
PG_SERVER = os.environ.get("MAILCTL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
MARIADB_SERVER = os.environ.get("MAILCTL_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")
# Alembic's own table: emptying it would make the shared database look unmigrated.
ALEMBIC_TABLE = "alembic_version"
# The counter of writes to what listings show: its one row is set anew, not deleted.
LIST_REVISIONS = "list_revisions"
# Seconds the emptying of the shared database waits for a lock before it fails loudly.
RESET_LOCK_TIMEOUT = 10

_counter = itertools.count()
_pg_template: str | None = None


def selected_backends() -> list[str]:
    """Backends to run on: all three unless MAILCTL_TEST_BACKENDS names fewer."""
    wanted = os.environ.get("MAILCTL_TEST_BACKENDS", ",".join(ALL_BACKENDS))
    chosen = [name.strip() for name in wanted.split(",") if name.strip()]
    unknown = set(chosen) - set(ALL_BACKENDS)
    if unknown:
        raise ValueError(f"unknown backends in MAILCTL_TEST_BACKENDS: {sorted(unknown)}")
    return chosen


def _name(prefix: str) -> str:
    """A database name no other test process uses (it carries this process's id)."""
    return f"mailctl_{prefix}_{os.getpid()}_{next(_counter)}"


def _server(url: str) -> Engine:
    return create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def _migrate(url: str) -> None:
    database = Database(url)
    try:
        database.upgrade()
    finally:
        database.dispose()


def _pg_template_db() -> str:
    """A migrated template database, so each fresh database is a quick copy of it."""
    global _pg_template
    if _pg_template is None:
        name = _name("template")
        server = _server(f"{PG_SERVER}/postgres")
        with server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        server.dispose()
        _migrate(f"{PG_SERVER}/{name}")
        _pg_template = name
    return _pg_template


def drop_pg_template() -> None:
    global _pg_template
    if _pg_template is not None:
        server = _server(f"{PG_SERVER}/postgres")
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{_pg_template}" WITH (FORCE)'))
        server.dispose()
        _pg_template = None


@contextmanager
def fresh_database(backend: str, tmp_path: Path, migrated: bool = True) -> Iterator[str]:
    """Yield the URL of a new database, migrated unless told not to; drop it afterwards.

    Not migrated is what a user has before `mailctl init`: for SQLite, no file at all.
    """
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'mailctl-test.db'}"
        if migrated:
            _migrate(url)
        yield url
        return
    if backend == "postgresql":
        template = _pg_template_db() if migrated else "template0"
        name = _name("t")
        server = _server(f"{PG_SERVER}/postgres")
        try:
            with server.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
            yield f"{PG_SERVER}/{name}"
        finally:
            with server.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            server.dispose()
        return
    if backend == "mariadb":
        name = _name("t")
        server = _server(f"{MARIADB_SERVER}/")
        try:
            with server.connect() as conn:
                conn.execute(
                    text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                )
            url = f"{MARIADB_SERVER}/{name}"
            if migrated:
                _migrate(url)
            yield url
        finally:
            with server.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            server.dispose()
        return
    raise ValueError(f"unknown backend {backend}")


class _Shared:
    """One migrated database of a server backend, emptied before each test that uses it."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.name = _name("shared")
        postgresql = backend == "postgresql"
        self.server = _server(f"{PG_SERVER}/postgres" if postgresql else f"{MARIADB_SERVER}/")
        with self.server.connect() as conn:
            if postgresql:
                conn.execute(text(f'CREATE DATABASE "{self.name}"'))
            else:
                conn.execute(
                    text(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
                )
        self.url = f"{PG_SERVER if postgresql else MARIADB_SERVER}/{self.name}"
        _migrate(self.url)
        self.engine = _server(self.url)
        schema = MetaData()
        schema.reflect(self.engine)
        # Children before their parents, so no foreign key ever refuses a DELETE.
        self.tables = [
            table
            for table in reversed(schema.sorted_tables)
            if table.name not in (ALEMBIC_TABLE, LIST_REVISIONS)
        ]

    def reset(self) -> None:
        """Delete every row but Alembic's, restart the ids at 1 and the list revision at a
        value no earlier test saw (as a new migration would)."""
        self._empty()
        with self.engine.connect() as conn:
            conn.execute(delete(ListRevision))
            conn.execute(
                insert(ListRevision).values(name=LISTINGS, revision=time.time_ns() // 1000)
            )

    def _empty(self) -> None:
        """Delete every row but Alembic's and the list revision's; restart the ids at 1.

        Connections a previous test left open (a server thread, a killed client) are ended
        first: nothing of another test may hold a lock or a session setting over here.
        On PostgreSQL, DELETE and a restart of the used sequences take milliseconds where
        TRUNCATE of the thirteen tables takes about half a second; on MariaDB, where only
        TRUNCATE restarts AUTO_INCREMENT quickly, only the tables a test used are truncated.
        """
        with self.engine.connect() as conn:
            if self.backend == "postgresql":
                conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = :name AND pid <> pg_backend_pid()"
                    ),
                    {"name": self.name},
                )
                conn.execute(text(f"SET lock_timeout = '{RESET_LOCK_TIMEOUT}s'"))
                for table in self.tables:
                    conn.execute(table.delete())
                conn.execute(
                    text(
                        "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, 1, "
                        "false) FROM pg_sequences WHERE schemaname = current_schema() "
                        "AND last_value IS NOT NULL"
                    )
                )
                return
            others = conn.execute(
                text(
                    "SELECT id FROM information_schema.processlist "
                    "WHERE db = :name AND id <> CONNECTION_ID()"
                ),
                {"name": self.name},
            ).scalars()
            for thread in list(others):
                conn.execute(text(f"KILL CONNECTION {int(thread)}"))
            conn.execute(text(f"SET SESSION lock_wait_timeout = {RESET_LOCK_TIMEOUT}"))
            # TRUNCATE restarts AUTO_INCREMENT; only the tables a test used need it.
            with_rows = union_all(
                *(
                    select(literal(table.name)).where(exists().select_from(table))
                    for table in self.tables
                )
            )
            used = set(conn.execute(with_rows).scalars())
            used.update(
                conn.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = :name AND auto_increment > 1"
                    ),
                    {"name": self.name},
                ).scalars()
            )
            if used:
                conn.execute(text("SET FOREIGN_KEY_CHECKS = 0"))
                for table in sorted(used):
                    conn.execute(text(f"TRUNCATE TABLE `{table}`"))
                conn.execute(text("SET FOREIGN_KEY_CHECKS = 1"))

    def drop(self) -> None:
        self.engine.dispose()
        with self.server.connect() as conn:
            if self.backend == "postgresql":
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
            else:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{self.name}`"))
        self.server.dispose()


class SharedDatabases:
    """Databases migrated once per backend and test process, emptied before each test.

    SQLite's is a migrated file copied for each test (a copy costs less than emptying);
    PostgreSQL's and MariaDB's are one database each, truncated before each test.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._sqlite_template: Path | None = None
        self._servers: dict[str, _Shared] = {}

    def _sqlite(self, tmp_path: Path) -> str:
        if self._sqlite_template is None:
            template = self.root / "migrated.db"
            _migrate(f"sqlite:///{template}")
            self._sqlite_template = template
        target = tmp_path / "mailctl-test.db"
        shutil.copyfile(self._sqlite_template, target)
        return f"sqlite:///{target}"

    def clean(self, backend: str, tmp_path: Path) -> str:
        """The URL of a migrated database with no rows, for this test alone."""
        if backend == "sqlite":
            return self._sqlite(tmp_path)
        if backend not in ("postgresql", "mariadb"):
            raise ValueError(f"unknown backend {backend}")
        shared = self._servers.get(backend)
        if shared is not None:
            try:
                shared.reset()
                return shared.url
            except SQLAlchemyError:
                # A test broke it (dropped a table, say): the next one gets a new one.
                shared.drop()
        shared = self._servers[backend] = _Shared(backend)
        return shared.url

    def drop(self) -> None:
        for shared in self._servers.values():
            shared.drop()
        self._servers.clear()

"""Test databases on SQLite, PostgreSQL and MariaDB, one fresh database per test."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

from mailctl.storage.database import Database

ALL_BACKENDS = ("sqlite", "postgresql", "mariadb")
PG_SERVER = os.environ.get("MAILCTL_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432")
MARIADB_SERVER = os.environ.get("MAILCTL_TEST_MARIADB", "mysql+pymysql://root@127.0.0.1:3306")

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
    return f"mailctl_{prefix}_{os.getpid()}_{next(_counter)}"


def _server(url: str):  # type: ignore[no-untyped-def]
    return create_engine(url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def _pg_template_db() -> str:
    """A migrated template database, so each test's database is a quick copy of it."""
    global _pg_template
    if _pg_template is None:
        name = _name("template")
        server = _server(f"{PG_SERVER}/postgres")
        with server.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        server.dispose()
        database = Database(f"{PG_SERVER}/{name}")
        database.upgrade()
        database.dispose()
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
        if not migrated:
            yield url
            return
        database = Database(url)
        database.upgrade()
        database.dispose()
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
                database = Database(url)
                database.upgrade()
                database.dispose()
            yield url
        finally:
            with server.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            server.dispose()
        return
    raise ValueError(f"unknown backend {backend}")

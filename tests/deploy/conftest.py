"""Database servers that check passwords, for the README's deployment steps."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from tests.backends import MARIADB_SERVER
from tests.deploy.test_readme_mail_host import DatabaseServer

COMMAND_TIMEOUT = 60.0


def run_with_input(
    argv: list[str], stdin: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def mariadb_with_passwords() -> Iterator[DatabaseServer]:
    """The shared MariaDB: every user the README makes there has a password it checks."""
    url = make_url(MARIADB_SERVER)
    host, port = url.host or "127.0.0.1", url.port or 3306

    def admin(sql: str, database: str | None) -> None:
        # The server's own client, as the README's root does: the SQL on standard input.
        argv = ["mariadb", "-h", host, "-P", str(port), "-u", url.username or "root"]
        done = run_with_input([*argv, *([database] if database else [])], sql)
        assert done.returncode == 0, f"{sql}\n{done.stderr}"

    server = DatabaseServer("mariadb", host, port, admin, f"r{os.getpid()}_")
    try:
        yield server
    finally:
        for database in server.created_databases:
            admin(f"DROP DATABASE IF EXISTS `{database}`", None)
        for role in server.created_roles:
            admin(f"DROP USER IF EXISTS {role}", None)


@pytest.fixture
def postgresql_with_passwords(scram_postgres: str) -> Iterator[DatabaseServer]:
    """The tests' own PostgreSQL cluster, which checks every password (scram-sha-256)."""
    url = make_url(scram_postgres)
    host, port = url.host or "127.0.0.1", url.port or 5432

    def admin(sql: str, database: str | None) -> None:
        argv = ["psql", "-h", host, "-p", str(port), "-U", url.username or "postgres"]
        argv += ["-q", "-v", "ON_ERROR_STOP=1", "-d", database or "postgres"]
        done = run_with_input(argv, sql, {"PGPASSWORD": url.password or ""})
        assert done.returncode == 0, f"{sql}\n{done.stderr}"

    server = DatabaseServer("postgresql", host, port, admin, f"r{os.getpid()}_")
    try:
        yield server
    finally:
        for database in server.created_databases:
            admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)', None)
        for role in reversed(server.created_roles):
            admin(f"DROP ROLE IF EXISTS {role}", None)

"""The mail daemons' own database role: the SQL that makes it and grants it columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from sqlalchemy import create_engine, exc
from sqlalchemy.engine import make_url

from mailctl.errors import HostStateError, InvalidInputError, UnavailableError
from mailctl.storage.database import backend_of

# MariaDB names an account by user and client host; the daemons may come from any host
# the server lets in, so the account matches every host and the password guards it.
MARIADB_HOST = "%"


def _pg_literal(value: str) -> str:
    # standard_conforming_strings is on by default: only the quote itself is doubled.
    return "'" + value.replace("'", "''") + "'"


def _maria_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def grant_statements(
    backend: str,
    *,
    role: str,
    password: str,
    database: str,
    columns: Mapping[str, Sequence[str]],
    manage_role: bool,
    writes: Sequence[str] = (),
) -> list[str]:
    """SQL that lets ``role`` SELECT exactly ``columns`` (table → column names), nothing else.

    With ``manage_role`` the role is created if missing and given ``password`` (that needs
    a superuser, or CREATEROLE / CREATE USER); without, it must exist, and only the grants
    run, which the owner of the tables may give on PostgreSQL. Running it again is harmless.
    The tables in ``writes`` are the daemons' own to read and write whole.
    Names must be plain words (letters, digits, ``_.@%+-``), as the setup checks them.
    """
    if backend == "postgresql":
        quoted = f'"{role}"'
        statements = []
        if manage_role:
            statements += [
                "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                f"{_pg_literal(role)}) THEN CREATE ROLE {quoted} LOGIN; END IF; END $$",
                f"ALTER ROLE {quoted} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                f"NOINHERIT NOREPLICATION PASSWORD {_pg_literal(password)}",
            ]
        statements += [
            f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}",
            f'GRANT CONNECT ON DATABASE "{database}" TO {quoted}',
            f"GRANT USAGE ON SCHEMA public TO {quoted}",
        ]
        statements += [
            f"GRANT SELECT ({', '.join(names)}) ON TABLE {table} TO {quoted}"
            for table, names in columns.items()
        ]
        statements += [
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {table} TO {quoted}" for table in writes
        ]
        return statements
    if backend == "mariadb":
        account = f"{_maria_literal(role)}@{_maria_literal(MARIADB_HOST)}"
        statements = []
        if manage_role:
            secret = _maria_literal(password)
            statements += [
                f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY {secret}",
                f"ALTER USER {account} IDENTIFIED BY {secret}",
                f"REVOKE ALL PRIVILEGES, GRANT OPTION FROM {account}",
            ]
        statements += [
            f"GRANT SELECT ({', '.join(names)}) ON `{database}`.`{table}` TO {account}"
            for table, names in columns.items()
        ]
        statements += [
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON `{database}`.`{table}` TO {account}"
            for table in writes
        ]
        return statements
    raise InvalidInputError(f"A {backend} database has no roles to grant columns to.")


_SUPERUSER_HINT = (
    "run them as a superuser instead: `mailctl setup --grants --apply --admin-url URL`, "
    "or pipe `mailctl setup --grants` into psql or mariadb"
)


def run_statements(url: str, statements: Sequence[str], database: str) -> None:
    """Run ``statements`` one by one, committed each, as the login of ``url`` in ``database``.

    The statements carry literal values, so the driver is told there are no parameters
    (a ``%`` in a password is no placeholder). A refusal names the server's reason.
    """
    target = make_url(url).set(database=database)
    engine = create_engine(target, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            plain = connection.execution_options(no_parameters=True)
            for statement in statements:
                plain.exec_driver_sql(statement)
    except (exc.ProgrammingError, exc.InternalError) as error:
        raise HostStateError(
            f"The database refused to grant the daemons' columns as {target.username}: "
            f"{_reason(error)}; {_SUPERUSER_HINT}."
        ) from error
    except exc.OperationalError as error:
        reason = _reason(error)
        code = error.orig.args[0] if error.orig is not None and error.orig.args else None
        # MariaDB 1044/1142/1227: no right on that database or table, or for that statement.
        if backend_of(url) == "mariadb" and code in (1044, 1142, 1227):
            raise HostStateError(
                f"The database refused to grant the daemons' columns as {target.username}: "
                f"{reason}; {_SUPERUSER_HINT}."
            ) from error
        raise UnavailableError(
            f"Cannot run the grants as {target.username} on {target.host}: {reason}."
        ) from error
    finally:
        engine.dispose()


def _reason(error: exc.DBAPIError) -> str:
    # The driver's own first line; SQLAlchemy's text would repeat the statement, password
    # included.
    lines = str(error.orig).strip().splitlines() if error.orig is not None else []
    return lines[0].rstrip(".") if lines else "refused"

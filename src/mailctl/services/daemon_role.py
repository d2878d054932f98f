"""The mail daemons' own database role: the login their files get, and its column grants."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mailctl.config import Settings
from mailctl.errors import InvalidInputError
from mailctl.host.stack import DAEMON_COLUMNS, DAEMON_WRITES, SqlBackend
from mailctl.storage import daemon_role

DEFAULT_ROLE = "mailctl_daemons"
SETTING = "MAILCTL_DAEMON_DATABASE_URL"


@dataclass(frozen=True)
class DaemonAccess:
    """The login Postfix and Dovecot are configured with, or why there is none yet.

    ``missing`` is set when the daemons' own role is not configured: the files then name
    the default role without a password, for display only, and setup must not write them.
    """

    backend: SqlBackend
    missing: str | None = None


def _missing_message(own: SqlBackend) -> str:
    scheme = "postgresql+psycopg" if own.kind == "postgresql" else "mysql+pymysql"
    port = f":{own.port}" if own.port else ""
    return (
        f"{SETTING} is not set. Postfix and Dovecot must not log in as mailctl: its "
        "database also holds the token signing secret and every DKIM and TLS private key. "
        f"Give them a role of their own that may read only their columns (`mailctl setup "
        f"--grants` prints the SQL, `--grants --apply --admin-url URL` runs it), then set "
        f"{SETTING}={scheme}://{DEFAULT_ROLE}:PASSWORD@{own.host}{port}/{own.database} "
        "with the password percent-encoded."
    )


def daemon_access(settings: Settings) -> DaemonAccess:
    """The login the daemons' files carry: their own role, never mailctl's on a server.

    On SQLite there are no roles: the daemons read mailctl's file itself.
    """
    own = SqlBackend.from_url(settings.database_url)
    given = settings.daemon_database_url.strip()
    if own.kind == "sqlite":
        if given and SqlBackend.from_url(given) != own:
            raise InvalidInputError(
                f"{SETTING} is for PostgreSQL and MariaDB; on SQLite the daemons read "
                "mailctl's own database file. Unset it."
            )
        return DaemonAccess(own)
    if not given:
        placeholder = dataclasses.replace(own, user=DEFAULT_ROLE, password="")
        return DaemonAccess(placeholder, _missing_message(own))
    theirs = SqlBackend.from_url(given)
    if theirs.kind != own.kind:
        raise InvalidInputError(
            f"{SETTING} is a {theirs.kind} database, but mailctl's is {own.kind}: the "
            "daemons must read the database mailctl writes."
        )
    if theirs.database != own.database:
        raise InvalidInputError(
            f"{SETTING} names the database {theirs.database!r}, but mailctl's is "
            f"{own.database!r}: the daemons must read the database mailctl writes."
        )
    if not theirs.user or theirs.user == own.user:
        raise InvalidInputError(
            f"{SETTING} must name the daemons' own role, not mailctl's user {own.user!r}: "
            "mailctl's login can read the token secret and the private keys."
        )
    return DaemonAccess(theirs)


def _role(settings: Settings) -> SqlBackend:
    access = daemon_access(settings)
    if access.backend.kind == "sqlite":
        raise InvalidInputError(
            "SQLite has no roles: Postfix and Dovecot read the whole database file, the "
            "token signing secret and the private keys included. Use PostgreSQL or MariaDB "
            "to keep them apart."
        )
    if access.missing is not None:
        raise InvalidInputError(access.missing)
    return access.backend


def grant_sql(settings: Settings) -> list[str]:
    """The SQL a superuser runs to create the daemons' role and grant it their columns.

    It holds the role's password from the daemons' URL.
    """
    role = _role(settings)
    return daemon_role.grant_statements(
        role.kind,
        role=role.user,
        password=role.password,
        database=role.database,
        columns=DAEMON_COLUMNS,
        manage_role=True,
        writes=DAEMON_WRITES,
    )


def apply_grants(settings: Settings, admin_url: str | None = None) -> list[str]:
    """Create the role and grant its columns through ``admin_url``; without, only grant,
    through mailctl's own login (the owner of the tables may, on PostgreSQL).

    Returns the statements that ran.
    """
    role = _role(settings)
    statements = daemon_role.grant_statements(
        role.kind,
        role=role.user,
        password=role.password,
        database=role.database,
        columns=DAEMON_COLUMNS,
        manage_role=admin_url is not None,
        writes=DAEMON_WRITES,
    )
    if admin_url is not None and SqlBackend.from_url(admin_url).kind != role.kind:
        raise InvalidInputError(f"--admin-url must be a {role.kind} URL like the database's.")
    daemon_role.run_statements(admin_url or settings.database_url, statements, role.database)
    return statements

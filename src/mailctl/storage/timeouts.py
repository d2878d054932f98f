"""How long mailctl waits for its database: connect and statement timeouts per backend."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

# Python's sqlite3 takes the busy timeout in seconds; a day stands for "no limit".
_SQLITE_NO_LIMIT = 86400.0
_ER_UNKNOWN_SYSTEM_VARIABLE = 1193


@dataclass(frozen=True)
class Timeouts:
    """Seconds mailctl waits for its database; a statement timeout of 0 means no limit.

    ``connect`` bounds opening a connection (TCP and the login). ``statement`` bounds one
    statement: the server cancels it (PostgreSQL ``statement_timeout`` and
    ``lock_timeout``, MariaDB ``max_statement_time`` and its lock waits, SQLite's busy
    timeout), and the client gives up on a server that answers nothing at all
    ``CLIENT_GRACE`` seconds later. A frozen database then costs a request a bounded time
    instead of hanging it, and the connection is dropped so the pool heals by itself.
    """

    connect: float = 5.0
    statement: float = 10.0

    # The server's own cancellation comes first and says more; the client's deadline is
    # for a server that answers nothing (a stopped process, a stalled network or proxy).
    CLIENT_GRACE: ClassVar[float] = 1.0

    @property
    def client(self) -> float | None:
        """Seconds the client waits for any answer; None without a statement timeout."""
        return self.statement + self.CLIENT_GRACE if self.statement > 0 else None

    def without_statement_limit(self) -> Timeouts:
        """The same connect timeout and no statement timeout: for schema migrations."""
        return Timeouts(connect=self.connect, statement=0)


def sqlite_busy_seconds(limits: Timeouts) -> float:
    """SQLite has no server to freeze: its one wait is for another writer's lock."""
    return limits.statement if limits.statement > 0 else _SQLITE_NO_LIMIT


def sqlite_pragmas(limits: Timeouts) -> Callable[[Any, Any], None]:
    """The ``connect`` listener that sets up every SQLite connection."""
    busy_ms = int(sqlite_busy_seconds(limits) * 1000)

    def pragmas(dbapi_connection: Any, _record: Any) -> None:
        # Foreign keys give us ON DELETE CASCADE; WAL lets Postfix and Dovecot read the
        # file while the API writes; busy_timeout waits for a writer, up to the statement
        # timeout, instead of failing at once or waiting without end.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_ms}")
        cursor.close()

    return pragmas


def postgresql_connect_args(limits: Timeouts, url_options: object) -> dict[str, Any]:
    """libpq parameters: connect timeout, keepalives, and the server-side statement limits."""
    # libpq takes whole seconds, and 0 would mean "wait for ever".
    args: dict[str, Any] = {"connect_timeout": max(1, math.ceil(limits.connect))}
    # Keepalives notice a server whose host or network vanished while a connection idles
    # in the pool; tcp_user_timeout, one that never acknowledges what was sent to it.
    args |= {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10}
    args |= {"keepalives_count": 3, "tcp_user_timeout": 60_000}
    if limits.statement > 0:
        ms = max(1, round(limits.statement * 1000))
        # Startup options, not SETs: they hold for the whole session, rollbacks included,
        # and cost no round trip. Options the URL gives are kept, ours come last.
        ours = f"-c statement_timeout={ms} -c lock_timeout={ms}"
        given = url_options if isinstance(url_options, str) else ""
        args["options"] = f"{given} {ours}".strip()
    return args


def postgresql_deadline(seconds: float) -> Callable[..., Any]:
    """The ``do_connect`` listener that opens DeadlineConnections."""
    # psycopg is loaded by a PostgreSQL engine only: a server on SQLite or MariaDB
    # never holds it.
    from mailctl.storage.pg_deadline import DeadlineConnection

    def connect(_dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        connection = DeadlineConnection.connect(*cargs, **cparams)
        connection.deadline = seconds
        return connection

    return connect


def mariadb_connect_args(limits: Timeouts, loopback: bool = False) -> dict[str, Any]:
    """PyMySQL's socket timeouts, in whole seconds; no TLS attempt over loopback.

    Given no TLS options, PyMySQL offers TLS without checking the server's certificate
    and builds a new context with the system's CA store for every connection: about
    90 ms of CPU each. Over loopback (or a Unix socket) that protects nothing, so a
    ``loopback`` server that was not asked for TLS (``ssl_*`` in the URL) is reached
    without it.
    """
    # connect bounds the TCP connect; read and write bound every wait for the server,
    # the login included; past them PyMySQL closes the connection (error 2013).
    args: dict[str, Any] = {"connect_timeout": max(1, math.ceil(limits.connect))}
    if loopback:
        args["ssl_disabled"] = True
    if limits.client is not None:
        args["read_timeout"] = math.ceil(limits.client)
        args["write_timeout"] = math.ceil(limits.client)
    return args


def mariadb_session_limits(seconds: float) -> Callable[[Any, Any], None]:
    """The ``connect`` listener that sets the server-side limits of a MariaDB session."""
    whole = max(1, math.ceil(seconds))
    statements = (
        # MariaDB ends any statement running longer (MySQL has no such variable: skipped).
        f"SET SESSION max_statement_time={seconds:.3f}",
        # Waits for a row lock and for a table (metadata) lock; the latter's default is a
        # year, so a LOCK TABLES elsewhere would hold a request until the client gave up.
        f"SET SESSION innodb_lock_wait_timeout={whole}",
        f"SET SESSION lock_wait_timeout={whole}",
    )

    def apply(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            for statement in statements:
                try:
                    cursor.execute(statement)
                except Exception as error:
                    if mysql_code(error) != _ER_UNKNOWN_SYSTEM_VARIABLE:
                        raise
        finally:
            cursor.close()

    return apply


def mysql_code(error: BaseException) -> int | None:
    """The MariaDB/MySQL error number of a PyMySQL error, if it has one."""
    args = getattr(error, "args", ())
    return args[0] if args and isinstance(args[0], int) else None

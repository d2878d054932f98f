"""Driver errors of the three backends map to a full disk, a timeout, or an outage."""

from __future__ import annotations

import errno
import sqlite3

import psycopg
import pymysql
import pytest
from sqlalchemy import event, exc

from mailctl.errors import (
    DiskFullError,
    HostStateError,
    InvalidInputError,
    UnavailableError,
    reported,
)
from mailctl.storage.database import make_engine, translate
from mailctl.storage.timeouts import Timeouts, postgresql_connect_args


def _sqlite_error(code: int, message: str) -> sqlite3.OperationalError:
    error = sqlite3.OperationalError(message)
    error.sqlite_errorcode = code  # type: ignore[attr-defined]
    return error


def _wrapped(
    orig: BaseException, kind: type[exc.DBAPIError] = exc.OperationalError
) -> exc.DBAPIError:
    return kind("INSERT INTO virtual_users ...", {}, orig)


DISK_FULL = [
    pytest.param(_sqlite_error(13, "database or disk is full"), id="sqlite-SQLITE_FULL"),
    pytest.param(
        psycopg.errors.lookup("53100")(
            'could not extend file "base/16384/16385": No space left on device'
        ),
        id="postgresql-53100",
    ),
    pytest.param(
        pymysql.err.OperationalError(
            1021, "Disk full (/tmp/#sql-1.MAI); waiting for someone to free some space..."
        ),
        id="mariadb-1021",
    ),
    pytest.param(
        pymysql.err.OperationalError(1114, "The table 'virtual_users' is full"),
        id="mariadb-1114",
    ),
    pytest.param(
        pymysql.err.InternalError(
            3, "Error writing file './mailctl/x.ibd' (Errcode: 28 \"No space left on device\")"
        ),
        id="mariadb-errno-28",
    ),
    pytest.param(
        pymysql.err.OperationalError(
            1030, 'Got error 28 "No space left on device" from storage engine InnoDB'
        ),
        id="mariadb-1030-errno-28",
    ),
]


@pytest.mark.security(
    finding=11,
    claim="A full disk met by PostgreSQL (53100), MariaDB (1021, 1114, errno 28) or SQLite "
    "(SQLITE_FULL) is reported as 'The disk is full' with 507, not as an unavailable database.",
)
@pytest.mark.parametrize("orig", DISK_FULL)
def test_database_disk_full_is_reported_as_such(orig: BaseException) -> None:
    """Each backend's disk-full error becomes DiskFullError (507, exit 10)."""
    error = translate(_wrapped(orig))
    assert isinstance(error, DiskFullError)
    assert error.status_code == 507
    assert error.exit_code == 10
    assert error.message.startswith("The disk is full")


TIMED_OUT = [
    pytest.param(_sqlite_error(5, "database is locked"), id="sqlite-SQLITE_BUSY"),
    pytest.param(
        psycopg.errors.lookup("57014")("canceling statement due to statement timeout"),
        id="postgresql-57014",
    ),
    pytest.param(
        psycopg.errors.lookup("55P03")("canceling statement due to lock timeout"),
        id="postgresql-55P03",
    ),
    pytest.param(
        pymysql.err.OperationalError(1205, "Lock wait timeout exceeded; try restarting"),
        id="mariadb-1205",
    ),
    pytest.param(
        pymysql.err.OperationalError(
            1969, "Query execution was interrupted (max_statement_time exceeded)"
        ),
        id="mariadb-1969",
    ),
]


@pytest.mark.parametrize("orig", TIMED_OUT)
def test_statement_timeouts_are_503_with_retry_after(orig: BaseException) -> None:
    """A statement the server gave up on is a 503 that says to try again, with a delay."""
    error = translate(_wrapped(orig))
    assert isinstance(error, UnavailableError)
    assert "did not answer in time" in error.message
    assert error.retry_after is not None and error.retry_after > 0


def test_lost_connection_is_unavailable_not_disk_full() -> None:
    """A client timeout (PyMySQL's 2013) is an outage; a user value with 28 is no disk."""
    lost = pymysql.err.OperationalError(2013, "Lost connection to MySQL server (timed out)")
    assert isinstance(translate(_wrapped(lost)), UnavailableError)
    duplicate = pymysql.err.IntegrityError(1062, "Duplicate entry 'error 28' for key 'name'")
    assert not isinstance(translate(_wrapped(duplicate, exc.IntegrityError)), DiskFullError)


def test_triggers_refused_under_binary_logging_say_what_to_set() -> None:
    """MariaDB with binary logging refuses a user without SUPER the migration's triggers:
    the message names the setting that allows them, not an outage to wait out."""
    refused = pymysql.err.OperationalError(
        1419,
        "You do not have the SUPER privilege and binary logging is enabled (you *might* "
        "want to use the less safe log_bin_trust_function_creators variable)",
    )
    error = translate(_wrapped(refused))
    assert isinstance(error, UnavailableError)
    assert "log_bin_trust_function_creators = 1" in error.message
    assert error.retry_after is None


def test_full_disk_behind_a_host_error_is_reported_as_full() -> None:
    """ENOSPC under a HostStateError (or raw) is a full disk; input errors stay as they are."""
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as oserror:
            raise HostStateError(
                "Cannot write /x/fullchain.pem: No space left on device."
            ) from oserror
    except HostStateError as host_error:
        shown = reported(host_error)
    assert isinstance(shown, DiskFullError)
    assert "Cannot write /x/fullchain.pem" in shown.message
    assert isinstance(reported(OSError(errno.EDQUOT, "Disk quota exceeded")), DiskFullError)
    assert reported(OSError(errno.EACCES, "Permission denied")) is None
    bad = InvalidInputError("bad")
    assert reported(bad) is bad


def test_statement_limits_keep_options_of_the_url() -> None:
    """PostgreSQL gets its limits as startup options, after any the URL gave."""
    args = postgresql_connect_args(Timeouts(connect=0.5, statement=2.5), "-c search_path=mail")
    assert args["connect_timeout"] == 1
    assert args["options"] == ("-c search_path=mail -c statement_timeout=2500 -c lock_timeout=2500")
    assert "options" not in postgresql_connect_args(Timeouts(statement=0), None)
    assert Timeouts(statement=0).client is None


class _Stop(Exception):
    pass


def _mariadb_connect_params(url: str) -> dict[str, object]:
    """The arguments make_engine would hand PyMySQL for ``url`` (nothing is connected)."""
    engine = make_engine(url)
    seen: dict[str, object] = {}

    @event.listens_for(engine, "do_connect")
    def capture(
        _dialect: object, _record: object, _args: object, params: dict[str, object]
    ) -> None:
        seen.update(params)
        raise _Stop

    with pytest.raises(_Stop):
        engine.connect()
    engine.dispose()
    return seen


@pytest.mark.parametrize(
    ("url", "tls_offered"),
    [
        ("mysql+pymysql://mailctl:pw@127.0.0.1/mailctl", False),
        ("mysql+pymysql://mailctl:pw@localhost/mailctl", False),
        ("mysql+pymysql://mailctl:pw@[::1]/mailctl", False),
        ("mysql+pymysql://mailctl:pw@/mailctl?unix_socket=/run/mysqld/mysqld.sock", False),
        ("mysql+pymysql://mailctl:pw@db.example.net/mailctl", True),
        ("mysql+pymysql://mailctl:pw@192.0.2.7/mailctl", True),
        ("mysql+pymysql://mailctl:pw@127.0.0.1/mailctl?ssl_ca=/etc/ssl/db-ca.pem", True),
    ],
)
def test_mariadb_over_loopback_skips_the_tls_attempt(url: str, tls_offered: bool) -> None:
    """Over loopback PyMySQL is told not to build a TLS context (90 ms per connection);
    a remote server, or a URL that asks for TLS, keeps PyMySQL's own choice."""
    params = _mariadb_connect_params(url)
    assert params.get("ssl_disabled") is (None if tls_offered else True)

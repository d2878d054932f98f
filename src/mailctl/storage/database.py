"""Engine set-up per backend, schema migrations, and translation of driver errors."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, exc, inspect, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

from mailctl.errors import (
    DISK_FULL,
    ConflictError,
    DiskFullError,
    InvalidInputError,
    MailctlError,
    UnavailableError,
)
from mailctl.storage.timeouts import (
    Timeouts,
    mariadb_connect_args,
    mariadb_session_limits,
    mysql_code,
    postgresql_connect_args,
    postgresql_deadline,
    sqlite_busy_seconds,
    sqlite_pragmas,
)

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
BACKENDS = ("sqlite", "postgresql", "mariadb")
# Never echo the URL: it may hold the database password.
UNUSABLE_URL = (
    "MAILCTL_DATABASE_URL is not a database URL mailctl can use (sqlite:///FILE, "
    "postgresql+psycopg://USER@HOST/DB or mysql+pymysql://USER@HOST/DB)."
)


def backend_of(url: str) -> str:
    """Name the backend of a database URL: ``sqlite``, ``postgresql`` or ``mariadb``."""
    name = make_url(url).get_backend_name()
    if name in ("mysql", "mariadb"):
        return "mariadb"
    return name


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL; None for another backend or an in-memory database."""
    try:
        parsed = make_url(url)
    except exc.ArgumentError as error:
        raise InvalidInputError(UNUSABLE_URL) from error
    if backend_of(url) != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).absolute()


def _loopback_without_tls(url: URL) -> bool:
    """Whether a MariaDB URL names this machine (or a socket) and asks for no TLS."""
    if any(key.startswith("ssl") for key in url.query):
        return False
    if "unix_socket" in url.query or url.host in (None, "", "localhost"):
        return True
    try:
        return ipaddress.ip_address(url.host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_engine(url: str, timeouts: Timeouts | None = None) -> Engine:
    """Create an engine with the settings each backend needs to behave like the others.

    ``timeouts`` (the defaults of Timeouts if not given) bound how long a connect and a
    statement may take; see storage.timeouts.
    """
    limits = timeouts or Timeouts()
    parsed = make_url(url)
    backend = backend_of(url)
    # A server may have dropped a pooled connection (a restart): test each one as it is
    # taken. A SQLite file has no server to lose, and the test would cost each request.
    kwargs: dict[str, Any] = {"pool_pre_ping": backend != "sqlite"}
    if backend == "sqlite":
        kwargs["connect_args"] = {
            "timeout": sqlite_busy_seconds(limits),
            "check_same_thread": False,
        }
    elif backend == "mariadb":
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        kwargs["pool_recycle"] = 3600
        # InnoDB's default REPEATABLE READ keeps the snapshot of a transaction's first read:
        # a request that waited for a row lock would not see what the holder committed and
        # would act on stale rows. READ COMMITTED is PostgreSQL's default; both then agree.
        kwargs["isolation_level"] = "READ COMMITTED"
        kwargs["connect_args"] = mariadb_connect_args(limits, _loopback_without_tls(parsed))
    elif backend == "postgresql":
        options = parsed.query.get("options")
        parsed = parsed.difference_update_query(["options"])
        kwargs["connect_args"] = postgresql_connect_args(limits, options)
    engine = create_engine(parsed, **kwargs)
    if backend == "sqlite":
        event.listen(engine, "connect", sqlite_pragmas(limits))
    elif backend == "mariadb" and limits.statement > 0:
        event.listen(engine, "connect", mariadb_session_limits(limits.statement))
    elif backend == "postgresql" and limits.client is not None:
        event.listen(engine, "do_connect", postgresql_deadline(limits.client))
    return engine


VERSION_TABLE = "alembic_version"
_REVISION_LINE = re.compile(r'^(down_revision|revision) = (?:"([^"]*)"|None)$', re.MULTILINE)


@lru_cache(maxsize=1)
def newest_revision() -> str:
    """The revision no other migration follows, read from the migration files themselves.

    The same answer as Alembic's ``get_current_head()`` (a test compares them) for the
    straight line of revisions mailctl keeps, without loading Alembic.
    """
    revisions: set[str] = set()
    followed: set[str] = set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        fields = dict(
            (name, value) for name, value in _REVISION_LINE.findall(path.read_text("utf-8"))
        )
        revisions.add(fields["revision"])
        if fields.get("down_revision"):
            followed.add(fields["down_revision"])
    heads = revisions - followed
    if len(heads) != 1:
        raise RuntimeError(f"the migrations must end in one revision, not {sorted(heads)}")
    return heads.pop()


NOT_SET_UP = "The database has no mailctl tables yet: run `mailctl init` first."
NOT_UP_TO_DATE = "The database's mailctl tables are not up to date: run `mailctl init`."


def _missing_table(error: exc.SQLAlchemyError) -> bool:
    """True when the driver says a table does not exist: `mailctl init` never ran here."""
    orig = getattr(error, "orig", None)
    if orig is None:
        return False
    if getattr(orig, "sqlstate", None) == "42P01":  # PostgreSQL: undefined_table
        return True
    args = getattr(orig, "args", ())
    if args and args[0] == 1146:  # MariaDB/MySQL: ER_NO_SUCH_TABLE
        return True
    return str(orig).startswith("no such table")  # SQLite


# MariaDB/MySQL: ER_DISK_FULL, ER_RECORD_FILE_FULL (InnoDB cannot grow a tablespace).
_MYSQL_DISK_FULL = frozenset({1021, 1114})
# ER_LOCK_WAIT_TIMEOUT, MariaDB's ER_STATEMENT_TIMEOUT, MySQL's max_execution_time.
_MYSQL_TIMED_OUT = frozenset({1205, 1969, 3024})
# Errors that carry the OS's errno, here ENOSPC (28): ER_ERROR_ON_WRITE ("Error writing
# file ... (Errcode: 28 "No space left on device")"), ER_GET_ERRNO ("Got error 28 ...").
_MYSQL_OS_ERROR = frozenset({3, 1030})
_ERRNO_28 = re.compile(r"\b(?:error|errcode|errno):? 28\b|No space left on device", re.IGNORECASE)
_PG_DISK_FULL = "53100"
# query_canceled (statement_timeout), lock_not_available (lock_timeout).
_PG_TIMED_OUT = frozenset({"57014", "55P03"})
_SQLITE_FULL = 13
_SQLITE_BUSY = 5
RETRY_AFTER_SECONDS = 5
TIMED_OUT = (
    "The database did not answer in time: it is busy, or another session holds a lock. "
    "Try again shortly."
)
UNAVAILABLE = "The database is unavailable; try again shortly."
# ER_BINLOG_CREATE_ROUTINE_NEED_SUPER: with binary logging on, MariaDB lets only a user
# with SUPER create triggers (migration 0012's) unless told to trust their creators.
_MYSQL_TRIGGERS_NEED_SUPER = 1419
TRIGGERS_REFUSED = (
    "MariaDB refuses to create the triggers mailctl needs: binary logging is on and this "
    "database user lacks the SUPER privilege. Set log_bin_trust_function_creators = 1 in "
    "the server's configuration (safe with row-based binary logging), or run `mailctl "
    "init` once as a user with SUPER, then run it again."
)
DATABASE_FULL = f"{DISK_FULL} (The database cannot store the change.)"


def _sqlite_code(orig: BaseException) -> int | None:
    # Python gives the extended result code (SQLITE_BUSY_SNAPSHOT is 517); the primary
    # code is its low byte.
    code = getattr(orig, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _disk_full(orig: BaseException) -> bool:
    """True when the driver says the database's storage is full."""
    if _sqlite_code(orig) == _SQLITE_FULL:
        return True
    if getattr(orig, "sqlstate", None) == _PG_DISK_FULL:
        return True
    code = mysql_code(orig)
    if code in _MYSQL_DISK_FULL:
        return True
    return code in _MYSQL_OS_ERROR and bool(_ERRNO_28.search(str(orig)))


def _timed_out(orig: BaseException) -> bool:
    """True when the server gave up on a statement: a lock held too long, or slowness."""
    if _sqlite_code(orig) == _SQLITE_BUSY:
        return True
    if getattr(orig, "sqlstate", None) in _PG_TIMED_OUT:
        return True
    return mysql_code(orig) in _MYSQL_TIMED_OUT


def translate(error: exc.SQLAlchemyError) -> MailctlError:
    """Map a SQLAlchemy/driver error to the mailctl error a caller should see."""
    if _missing_table(error):
        return UnavailableError(NOT_SET_UP)
    orig = getattr(error, "orig", None)
    if isinstance(orig, BaseException) and _disk_full(orig):
        return DiskFullError(DATABASE_FULL)
    if isinstance(orig, BaseException) and mysql_code(orig) == _MYSQL_TRIGGERS_NEED_SUPER:
        return UnavailableError(TRIGGERS_REFUSED)
    if isinstance(orig, BaseException) and _timed_out(orig):
        return UnavailableError(TIMED_OUT, retry_after=RETRY_AFTER_SECONDS)
    if isinstance(error, exc.IntegrityError):
        return ConflictError("That entry exists already or is still referenced.")
    if isinstance(error, exc.DataError):
        return InvalidInputError("A value does not fit the database column it is stored in.")
    if isinstance(error, exc.OperationalError | exc.InterfaceError | exc.DisconnectionError):
        return UnavailableError(UNAVAILABLE, retry_after=RETRY_AFTER_SECONDS)
    if isinstance(error, exc.TimeoutError):
        return UnavailableError(
            "The database is busy; try again shortly.", retry_after=RETRY_AFTER_SECONDS
        )
    return UnavailableError("The database failed to answer the request.")


class Database:
    """One database: its engine, sessions and schema version."""

    def __init__(self, url: str, timeouts: Timeouts | None = None) -> None:
        self.url = url
        self.timeouts = timeouts or Timeouts()
        try:
            self.backend = backend_of(url)
            if self.backend not in BACKENDS:
                raise exc.ArgumentError(f"unsupported backend {self.backend}")
            self.engine = make_engine(url, self.timeouts)
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as error:
            raise InvalidInputError(UNUSABLE_URL) from error
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        session = self.sessions()
        try:
            yield session
        except exc.SQLAlchemyError as error:
            session.rollback()
            raise translate(error) from error
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def _alembic_config(self) -> AlembicConfig:
        # Alembic (and every dialect's DDL it loads) is imported only by what migrates or
        # reads the schema version: a server's worker processes never do, and save its
        # memory.
        from alembic.config import Config as AlembicConfig

        config = AlembicConfig()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        return config

    @property
    def sqlite_file(self) -> Path | None:
        """The file of a SQLite database (None for another backend or an in-memory one)."""
        if self.backend != "sqlite":
            return None
        name = make_url(self.url).database
        return Path(name) if name and name != ":memory:" else None

    def require_schema(self) -> None:
        """Raise UnavailableError saying to run `mailctl init` unless the schema is current.

        A SQLite file that does not exist is not created: only `mailctl init` makes one.
        """
        file = self.sqlite_file
        if file is not None and not file.is_file():
            raise UnavailableError(f"There is no database at {file}: run `mailctl init` first.")
        # Every command and each server start asks this: answered without Alembic, whose
        # import alone costs a server 11 MiB and a command a tenth of a second.
        try:
            with self.engine.connect() as connection:
                current = None
                if inspect(connection).has_table(VERSION_TABLE):
                    found = connection.execute(text("SELECT version_num FROM alembic_version"))
                    current = found.scalar()
        except exc.SQLAlchemyError as error:
            raise translate(error) from error
        if current is None:
            raise UnavailableError(NOT_SET_UP)
        if current != newest_revision():
            raise UnavailableError(NOT_UP_TO_DATE)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (idempotent); creates a SQLite file."""
        file = self.sqlite_file
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        config = self._alembic_config()
        # A migration may rewrite a big table in one statement: on a server it runs
        # without the statement timeout that bounds a request, on an engine of its own.
        # (SQLite's only limit is its wait for another writer, which a migration keeps.)
        engine = self.engine
        if self.backend != "sqlite":
            engine = make_engine(self.url, self.timeouts.without_statement_limit())
        try:
            with engine.begin() as connection:
                config.attributes["connection"] = connection
                from alembic import command

                command.upgrade(config, "head")
        except exc.SQLAlchemyError as error:
            raise translate(error) from error
        finally:
            if engine is not self.engine:
                engine.dispose()

    def schema_state(self) -> tuple[str | None, str | None]:
        """Return (current revision, newest revision) of the schema."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        script = ScriptDirectory.from_config(self._alembic_config())
        try:
            with self.engine.connect() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
        except exc.SQLAlchemyError as error:
            raise translate(error) from error
        return current, script.get_current_head()

    def dispose(self) -> None:
        self.engine.dispose()

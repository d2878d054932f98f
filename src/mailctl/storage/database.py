"""Engine set-up per backend, schema migrations, and translation of driver errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from mailctl.errors import (
    ConflictError,
    InvalidInputError,
    MailctlError,
    UnavailableError,
)

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


def make_engine(url: str) -> Engine:
    """Create an engine with the settings each backend needs to behave like the others."""
    parsed = make_url(url)
    backend = backend_of(url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if backend == "sqlite":
        kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
    elif backend == "mariadb":
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        kwargs["pool_recycle"] = 3600
        # InnoDB's default REPEATABLE READ keeps the snapshot of a transaction's first read:
        # a request that waited for a row lock would not see what the holder committed and
        # would act on stale rows. READ COMMITTED is PostgreSQL's default; both then agree.
        kwargs["isolation_level"] = "READ COMMITTED"
    elif backend == "postgresql":
        kwargs["connect_args"] = {"connect_timeout": 10}
    engine = create_engine(parsed, **kwargs)
    if backend == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Foreign keys give us ON DELETE CASCADE; WAL lets Postfix and Dovecot read the file
    # while the API writes; busy_timeout waits for a writer instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


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


def translate(error: exc.SQLAlchemyError) -> MailctlError:
    """Map a SQLAlchemy/driver error to the mailctl error a caller should see."""
    if _missing_table(error):
        return UnavailableError(NOT_SET_UP)
    if isinstance(error, exc.IntegrityError):
        return ConflictError("That entry exists already or is still referenced.")
    if isinstance(error, exc.DataError):
        return InvalidInputError("A value does not fit the database column it is stored in.")
    if isinstance(error, exc.OperationalError | exc.InterfaceError | exc.DisconnectionError):
        return UnavailableError("The database is unavailable; try again shortly.")
    if isinstance(error, exc.TimeoutError):
        return UnavailableError("The database is busy; try again shortly.")
    return UnavailableError("The database failed to answer the request.")


class Database:
    """One database: its engine, sessions and schema version."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.backend = backend_of(url)
            if self.backend not in BACKENDS:
                raise exc.ArgumentError(f"unsupported backend {self.backend}")
            self.engine = make_engine(url)
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
        current, head = self.schema_state()
        if current is None:
            raise UnavailableError(NOT_SET_UP)
        if current != head:
            raise UnavailableError(NOT_UP_TO_DATE)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (idempotent); creates a SQLite file."""
        file = self.sqlite_file
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
        config = self._alembic_config()
        try:
            with self.engine.begin() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        except exc.SQLAlchemyError as error:
            raise translate(error) from error

    def schema_state(self) -> tuple[str | None, str | None]:
        """Return (current revision, newest revision) of the schema."""
        script = ScriptDirectory.from_config(self._alembic_config())
        try:
            with self.engine.connect() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
        except exc.SQLAlchemyError as error:
            raise translate(error) from error
        return current, script.get_current_head()

    def dispose(self) -> None:
        self.engine.dispose()

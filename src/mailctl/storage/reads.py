"""Listings read straight from the driver: statements compiled once, rows as tuples.

A listing is the call a panel makes most. Through the ORM, a thousand domains cost five
times the query; even SQLAlchemy Core spends more per statement (building, caching by
shape, wrapping rows) than a small indexed query takes. So each listing statement is
built with SQLAlchemy once per shape and dialect, and its SQL text runs on the driver's
own cursor: the SQL stays SQLAlchemy's, for all three backends, and only the per-call
machinery is skipped. Errors still come out as mailctl errors (``translate``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple, cast

from sqlalchemy import bindparam, exc, func, literal_column, select
from sqlalchemy.engine import Dialect

from mailctl.storage.database import Database, translate
from mailctl.storage.tables import (
    LISTINGS,
    AdminDomain,
    ApiKeyDomain,
    Domain,
    ListRevision,
    MailboxUsage,
    User,
)

DomainRow = tuple[int, str, int]
# (id, domain id, address, quota bytes, quota messages, bytes used, messages stored)
UserRow = tuple[int, int, str, int | None, int | None, int, int]


@dataclass(frozen=True)
class Window:
    """Which part of a listing to read: all of it by default.

    ``after`` is a cursor (rows with a greater id, an index seek however deep), ``offset``
    skips rows, ``search`` keeps names holding that text (case-insensitive).
    """

    limit: int | None = None  # an offset is read only with a limit
    offset: int = 0
    after: int | None = None
    search: str | None = None


# A domain's mailboxes counted on the index of virtual_users.domain_id: a page of fifty
# domains costs fifty index look-ups, not a count of every mailbox.
_USERS_COUNT = (
    select(func.count())
    .select_from(User)
    .where(User.domain_id == Domain.id)
    .correlate(Domain)
    .scalar_subquery()
)


class _Compiled(NamedTuple):
    sql: str
    # The parameters' names in the order a positional driver (SQLite, PyMySQL) takes
    # them; None where the driver takes them by name (psycopg).
    order: tuple[str, ...] | None


_COMPILED: dict[tuple[str, str, tuple[bool, ...]], _Compiled] = {}


def _shaped(query: Any, id_column: Any, name_column: Any, shape: tuple[bool, ...]) -> Any:
    """``query`` narrowed as a window of that shape asks, with every value a parameter."""
    search, after, limited = shape
    if search:
        query = query.where(func.lower(name_column).like(bindparam("search"), escape="!"))
    if after:
        query = query.where(id_column > bindparam("after"))
    query = query.order_by(id_column)
    if limited:
        query = query.limit(bindparam("limit")).offset(bindparam("offset"))
    return query


def _domains(shape: tuple[bool, ...]) -> Any:
    *window, granted, keyed = shape
    query = select(Domain.id, Domain.name, _USERS_COUNT)
    # A domain admin's listing: its granted domains; a key's: the domains it is bound to.
    if granted:
        query = query.where(
            Domain.id.in_(
                select(AdminDomain.domain_id).where(AdminDomain.admin_id == bindparam("admin_id"))
            )
        )
    if keyed:
        query = query.where(
            Domain.id.in_(
                select(ApiKeyDomain.domain_id).where(ApiKeyDomain.key_id == bindparam("key_id"))
            )
        )
    return _shaped(query, Domain.id, Domain.name, tuple(window))


def _users(shape: tuple[bool, ...]) -> Any:
    # The usage is what Dovecot last wrote; a mailbox it never counted holds nothing.
    query = (
        select(
            User.id,
            User.domain_id,
            User.email,
            User.quota_bytes,
            User.quota_messages,
            func.coalesce(MailboxUsage.bytes, literal_column("0")),
            func.coalesce(MailboxUsage.messages, literal_column("0")),
        )
        .outerjoin(MailboxUsage, MailboxUsage.username == User.email)
        .where(User.domain_id == bindparam("domain_id"))
    )
    return _shaped(query, User.id, User.email, shape)


def _domain_exists(_shape: tuple[bool, ...]) -> Any:
    return select(Domain.id).where(Domain.id == bindparam("domain_id"))


def _list_revision(_shape: tuple[bool, ...]) -> Any:
    return select(ListRevision.revision).where(ListRevision.name == bindparam("name"))


def _compile(
    dialect: Dialect, name: str, build: Callable[..., Any], shape: tuple[bool, ...]
) -> _Compiled:
    key = (dialect.name, name, shape)
    found = _COMPILED.get(key)
    if found is None:
        compiled = build(shape).compile(dialect=dialect)
        order = compiled.positiontup
        found = _Compiled(compiled.string, tuple(order) if order is not None else None)
        _COMPILED[key] = found
    return found


def domains_sql(dialect: Dialect) -> str:
    """The SQL text of the whole domain listing on that dialect (it takes no parameters):
    what a benchmark times through the bare driver, as the API's own query."""
    return _compile(dialect, "domains", _domains, (*_shape(Window()), False, False)).sql


def _shape(window: Window) -> tuple[bool, ...]:
    return (bool(window.search), window.after is not None, window.limit is not None)


def _params(window: Window, **more: Any) -> dict[str, Any]:
    params = dict(more)
    if window.search:
        escaped = window.search.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
        params["search"] = f"%{escaped}%"
    if window.after is not None:
        params["after"] = window.after
    if window.limit is not None:
        params["limit"] = window.limit
        params["offset"] = window.offset
    return params


class Reads:
    """The listing queries, on one pooled driver connection (``reading``)."""

    def __init__(self, connection: Any, dialect: Dialect) -> None:
        self._connection = connection
        self._dialect = dialect

    def _rows(
        self, name: str, build: Callable[..., Any], shape: tuple[bool, ...], params: dict[str, Any]
    ) -> Sequence[tuple[Any, ...]]:
        compiled = _compile(self._dialect, name, build, shape)
        given: Any = params
        if compiled.order is not None:
            given = tuple(params[key] for key in compiled.order)
        cursor = self._connection.cursor()
        try:
            cursor.execute(compiled.sql, given)
            rows: Sequence[tuple[Any, ...]] = cursor.fetchall()
        except self._dialect.loaded_dbapi.Error as error:
            raise exc.DBAPIError.instance(
                compiled.sql, None, error, self._dialect.loaded_dbapi.Error, dialect=self._dialect
            ) from error
        finally:
            cursor.close()
        return rows

    def domain_rows(
        self,
        window: Window = Window(),
        *,
        granted_to: int | None = None,
        bound_to_key: int | None = None,
    ) -> list[DomainRow]:
        """(id, name, mailbox count) of the domains in the window, by id; only those
        granted to an admin, or bound to an API key, when one is named."""
        params = _params(window)
        if granted_to is not None:
            params["admin_id"] = granted_to
        if bound_to_key is not None:
            params["key_id"] = bound_to_key
        shape = (*_shape(window), granted_to is not None, bound_to_key is not None)
        rows = self._rows("domains", _domains, shape, params)
        return [(row[0], row[1], int(row[2])) for row in rows]

    def domain_exists(self, domain_id: int) -> bool:
        params = {"domain_id": domain_id}
        return bool(self._rows("domain_exists", _domain_exists, (), params))

    def list_revision(self) -> int | None:
        """The counter of writes to what the listings show (tables.ListRevision); None
        if its row is missing."""
        rows = self._rows("list_revision", _list_revision, (), {"name": LISTINGS})
        return int(rows[0][0]) if rows else None

    def user_rows(self, domain_id: int, window: Window = Window()) -> list[UserRow]:
        """(id, domain id, address, quota, usage) of the domain's mailboxes in the
        window, by id."""
        params = _params(window, domain_id=domain_id)
        rows = self._rows("users", _users, _shape(window), params)
        return [
            (
                row[0],
                row[1],
                row[2],
                None if row[3] is None else int(row[3]),
                None if row[4] is None else int(row[4]),
                int(row[5]),
                int(row[6]),
            )
            for row in rows
        ]


@contextmanager
def reading(database: Database) -> Iterator[Reads]:
    """A pooled connection for reads; it goes back rolled back, errors come out translated.

    A connection the server dropped is thrown away rather than pooled again.
    """
    engine = database.engine
    driver_error = engine.dialect.loaded_dbapi.Error
    try:
        connection = engine.raw_connection()
    except exc.SQLAlchemyError as error:
        raise translate(error) from error
    except driver_error as error:
        # A raw connection hands the driver's own error through (a server down or frozen):
        # wrapped as SQLAlchemy would, it is the same 503 as on any other path.
        wrapped = exc.DBAPIError.instance(
            None, None, error, driver_error, connection_invalidated=True, dialect=engine.dialect
        )
        raise translate(wrapped) from error
    try:
        yield Reads(connection, engine.dialect)
    except exc.DBAPIError as error:
        if error.connection_invalidated or engine.dialect.is_disconnect(
            cast(Any, error.orig), connection.dbapi_connection, None
        ):
            connection.invalidate()
        raise translate(error) from error
    finally:
        connection.close()

"""Login throttle rows: taken under a lock, so concurrent attempts count one after another."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from mailctl.storage.tables import LoginThrottleRow


class LoginThrottles:
    """Queries on ``login_throttle``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    @property
    def _dialect(self) -> str:
        return self.session.get_bind().dialect.name

    def ensure(self, keys: Sequence[str], now: float) -> None:
        """Create the missing rows of ``keys``; rows another request created stay as they are.

        Run in a transaction of its own before :meth:`lock`, so two requests that both
        find a key missing do not collide on its primary key.
        """
        values = [
            {"key": key, "failures": 0, "last_at": now, "blocked_until": None, "expires_at": now}
            for key in keys
        ]
        dialect = self._dialect
        if dialect == "sqlite":
            self.session.execute(sqlite_insert(LoginThrottleRow).on_conflict_do_nothing(), values)
        elif dialect == "postgresql":
            self.session.execute(pg_insert(LoginThrottleRow).on_conflict_do_nothing(), values)
        else:
            statement = mysql_insert(LoginThrottleRow)
            self.session.execute(
                statement.on_duplicate_key_update(key=statement.inserted.key), values
            )

    def lock(self, keys: Sequence[str]) -> list[LoginThrottleRow]:
        """The rows of ``keys``, locked until the transaction ends, in a fixed order.

        PostgreSQL and MariaDB lock the rows (SELECT ... FOR UPDATE); SQLite has no row
        locks, so the transaction takes the database's write lock before it reads.
        """
        if self._dialect == "sqlite":
            self.session.execute(text("BEGIN IMMEDIATE"))
        query = (
            select(LoginThrottleRow)
            .where(LoginThrottleRow.key.in_(sorted(keys)))
            .order_by(LoginThrottleRow.key)
            .with_for_update()
        )
        return list(self.session.scalars(query).all())

    def remove(self, row: LoginThrottleRow) -> None:
        self.session.delete(row)
        self.session.flush()

    def purge_expired(self, now: float) -> None:
        """Forget counters nobody has added to for longer than they matter."""
        self.session.execute(
            delete(LoginThrottleRow).where(LoginThrottleRow.expires_at < now),
            execution_options={"synchronize_session": False},
        )

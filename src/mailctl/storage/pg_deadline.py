"""A psycopg connection with a client-side deadline on every wait for the server."""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import errors as pg_errors


class DeadlineConnection(psycopg.Connection[Any]):
    """A psycopg connection that gives up on a server silent for ``deadline`` seconds.

    statement_timeout needs a server that runs: a frozen one accepts bytes and answers
    nothing, and psycopg would wait for ever. Every wait for the server (a query, a
    commit, the pool's ping) goes through ``wait``; past the deadline the connection is
    closed, so the pool sees it broken and opens a new one for the next request.
    """

    deadline: float | None = None

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if timeout is not None or self.deadline is None:
            return super().wait(gen, interval, timeout)
        started = time.monotonic()
        try:
            return super().wait(gen, interval, self.deadline)
        except pg_errors.OperationalError as error:
            if self.closed or time.monotonic() - started < self.deadline:
                raise  # the server answered with an error, or the connection broke
            # The server may still act on what it was sent, or answer later: this
            # connection is in an unknown state and must not be used again.
            self.pgconn.finish()
            raise pg_errors.OperationalError(
                f"the server sent no answer within {self.deadline:g} seconds"
            ) from error

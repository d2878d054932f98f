"""The benchmark's data sets, written straight into mailctl's tables in bulk."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select

from mailctl.domain.passwords import hash_password
from mailctl.storage.database import make_engine
from mailctl.storage.tables import Domain, User

CHUNK = 5_000  # rows per executemany: large enough to be fast, small enough for MariaDB


@dataclass(frozen=True)
class Built:
    """What was inserted, and how long it took."""

    domains: int
    mailboxes: int
    seconds: float
    domain_ids: dict[str, int]  # name -> id, for the domains a section asks about

    @property
    def rows_per_second(self) -> float:
        return (self.domains + self.mailboxes) / self.seconds if self.seconds else 0.0


def domain_name(n: int) -> str:
    """The name of the n-th domain: ``d00042.bench.example``; they all contain "bench"."""
    return f"d{n:05d}.bench.example"


def prehashed() -> str:
    """One Argon2id hash at mailctl's own cost, shared by every mailbox of a data set."""
    return hash_password("bench-mailbox-password")


def _chunks(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _mailboxes(
    domain_id: int, name: str, count: int, password: str, now: datetime
) -> Iterator[dict[str, Any]]:
    for k in range(count):
        yield {
            "domain_id": domain_id,
            "email": f"u{k}@{name}",
            "password": password,
            "created_at": now,
        }


def build(
    database_url: str,
    domains: int,
    mailboxes: int,
    sized: dict[int, int] | None = None,
) -> Built:
    """Insert ``domains`` domains and ``mailboxes`` mailboxes in all.

    ``sized`` fixes the mailbox count of some domains by index (e.g. ``{1: 10}``: the
    domain ``d00001`` has exactly 10); the other mailboxes are spread evenly over the
    remaining domains. Rows go in by executemany in chunks, with one pre-hashed password
    (hashing a million passwords would measure hashing, not listing).
    """
    sized = dict(sized or {})
    password = prehashed()
    now = datetime.now(UTC)
    rest = [n for n in range(domains) if n not in sized]
    spread = mailboxes - sum(sized.values())
    if spread < 0 or (spread and not rest):
        raise ValueError("the sized domains hold more mailboxes than the data set")
    engine = make_engine(database_url)
    started = time.perf_counter()
    try:
        with engine.begin() as conn:
            for chunk in _chunks(
                {"name": domain_name(n), "created_at": now} for n in range(domains)
            ):
                conn.execute(insert(Domain), chunk)
            ids = {name: id_ for id_, name in conn.execute(select(Domain.id, Domain.name))}

            def users() -> Iterator[dict[str, Any]]:
                for n, count in sized.items():
                    yield from _mailboxes(ids[domain_name(n)], domain_name(n), count, password, now)
                for i, n in enumerate(rest):
                    # An even share, the first few domains taking one more when it does
                    # not divide.
                    count = spread // len(rest) + (1 if i < spread % len(rest) else 0)
                    yield from _mailboxes(ids[domain_name(n)], domain_name(n), count, password, now)

            for chunk in _chunks(users()):
                conn.execute(insert(User), chunk)
    finally:
        engine.dispose()
    return Built(domains, mailboxes, time.perf_counter() - started, ids)

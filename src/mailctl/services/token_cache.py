"""Tokens this process checked a moment ago, so a request needs no database look-up.

A token is checked against the database (its row, its revocation, the admin's token
generation) once, then trusted for ``ttl`` seconds. Revocation still takes effect at
once on this host: whatever revokes tokens (logout, revoke, a password change, deleting
an admin), from the API or the CLI, rewrites a stamp file in the data folder after its
commit, and every process empties its cache when the stamp changes (one ``stat`` per
request). An API replica on another host sharing the database sees a revocation within
``ttl`` seconds; ``ttl`` 0 checks the database on every request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

log = logging.getLogger("mailctl.tokens")

STAMP_NAME = ".tokens-revoked"
# Enough for every admin's live tokens; past it the cache starts again empty.
MAX_ENTRIES = 4096

T = TypeVar("T")
Stamp = tuple[int, int, int] | None


@dataclass(frozen=True)
class _Entry(Generic[T]):
    identity: T
    expires_at: float
    checked_at: float


def _stamp_of(path: Path) -> Stamp:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return None
    return (info.st_ino, info.st_mtime_ns, info.st_size)


class TokenCache(Generic[T]):
    """Identities of tokens checked within ``ttl`` seconds, keyed by the token itself."""

    def __init__(self, stamp: Path, ttl: float) -> None:
        self.stamp = stamp
        self.ttl = ttl
        self._entries: dict[str, _Entry[T]] = {}
        self._seen: Stamp = _stamp_of(stamp)
        self._lock = threading.Lock()

    def get(self, token: str, now: float | None = None) -> T | None:
        """The identity of a token checked lately and not revoked since; None otherwise."""
        if self.ttl <= 0:
            return None
        entry = self._entries.get(token)
        if entry is None:
            return None
        current = _stamp_of(self.stamp)
        if current != self._seen:
            with self._lock:
                self._entries.clear()
                self._seen = current
            return None
        moment = time.time() if now is None else now
        if moment >= entry.expires_at or moment - entry.checked_at >= self.ttl:
            self._entries.pop(token, None)
            return None
        return entry.identity

    def snapshot(self) -> Stamp:
        """The revocation stamp now: take it before checking a token in the database."""
        return _stamp_of(self.stamp)

    def put(self, token: str, identity: T, expires_at: float, seen: Stamp) -> None:
        """Remember a token the database accepted, checked after ``snapshot()`` gave
        ``seen``; if tokens were revoked since, the answer may be stale and is not kept."""
        if self.ttl <= 0:
            return
        with self._lock:
            if _stamp_of(self.stamp) != seen:
                return
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[token] = _Entry(identity, expires_at, time.time())

    def revoked(self) -> None:
        """Tokens were revoked: forget every entry here, and tell the other processes."""
        with self._lock:
            self._entries.clear()
            try:
                self.stamp.parent.mkdir(parents=True, exist_ok=True)
                temporary = self.stamp.with_name(f"{STAMP_NAME}.{os.getpid()}.tmp")
                temporary.write_text(f"{time.time_ns()}\n")
                os.replace(temporary, self.stamp)
            except OSError as error:
                # The revocation is committed; other processes notice it when their
                # entries age out (ttl) instead of at once.
                log.warning("could not write %s: %s", self.stamp, error)
            self._seen = _stamp_of(self.stamp)

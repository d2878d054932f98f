"""Listing bodies kept per process while the tables they show stand unchanged.

Counting the mailboxes of a thousand domains costs more than all the rest of a
``GET /domains``, and a panel asks for the same list again and again. So each process
keeps the rendered bodies of its listings, and checks them against ``list_revisions``: a
counter the database raises in the same transaction as every write to the tables a
listing reads (triggers of migration 0012 on the domains, the mailboxes, the grants and
key bindings that narrow a caller's view, and deleted admins and keys). No writer can
miss it, as no writer runs it: this process or another worker, the CLI, another API
replica on the same database, a bulk insert past the ORM, SQL typed by hand.

A request reads the counter first (one row by its key), then the listing only when no
body is kept for that revision. In that order a body is never older than the revision it
is kept under: every write the counter had counted was committed before the listing was
read. A body may hold a write the counter had not counted yet; that write raised the
counter, so the body is served only to requests that read the counter before the write
committed.

The cache holds the bodies of one revision: another one (newer, or older after a
database was restored from a copy) empties it. At most ``max_entries`` bodies and
``max_bytes`` in all are kept, the least recently used dropped first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sized
from typing import TypeVar, cast

# Pages of a few listings, for a few kinds of callers; a page is a few kilobytes.
MAX_ENTRIES = 64

R = TypeVar("R", bound=Sized)


class ListingCache:
    """Rendered listings of one revision, by what the caller asked for; ``len()`` of a
    body is what it counts against ``max_bytes`` (0: keep nothing)."""

    def __init__(self, max_bytes: int, max_entries: int = MAX_ENTRIES) -> None:
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._revision: int | None = None
        self._entries: OrderedDict[Hashable, Sized] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """What the kept bodies count, in all."""
        return self._bytes

    def through(self, revision: int | None, key: Hashable, build: Callable[[], R]) -> R:
        """The body kept for ``key`` at ``revision``; else ``build()``'s, kept for the next.

        ``revision`` must have been read before ``build`` reads the listing. None (no
        counter to read) keeps nothing. ``key`` must say everything the body depends
        on besides the revision, including what renders it (the caller's ``build``).
        """
        if revision is None or self.max_bytes <= 0:
            return build()
        with self._lock:
            if revision != self._revision:
                self._empty(revision)
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
                return cast(R, found)
        body = build()
        self._keep(revision, key, body)
        return body

    def _empty(self, revision: int | None) -> None:
        self._entries.clear()
        self._bytes = 0
        self._revision = revision

    def _keep(self, revision: int, key: Hashable, body: Sized) -> None:
        size = len(body)
        if size > self.max_bytes:
            return
        with self._lock:
            # Another request read another revision meanwhile: this body may be of either.
            if revision != self._revision:
                return
            previous = self._entries.pop(key, None)
            if previous is not None:
                self._bytes -= len(previous)
            self._entries[key] = body
            self._bytes += size
            while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

"""Plain results the use cases return, so callers never hold database rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple


# Listings make thousands of these: a named tuple is made in a third of a frozen
# dataclass's time, and is as immutable.
class DomainView(NamedTuple):
    id: int
    name: str
    users_count: int


class UserView(NamedTuple):
    id: int
    domain_id: int
    email: str
    # The quota (None: unlimited) and what Dovecot last counted in the mailbox.
    quota_bytes: int | None = None
    quota_messages: int | None = None
    used_bytes: int = 0
    used_messages: int = 0


@dataclass(frozen=True)
class DomainLimits:
    """A domain's limits (None: unlimited) beside what it has now."""

    domain_id: int
    domain: str
    max_mailboxes: int | None
    max_aliases: int | None
    max_quota_bytes: int | None
    mailboxes: int
    aliases: int
    quota_bytes: int  # the mailboxes' quotas added up (unlimited ones count nothing)


@dataclass(frozen=True)
class TrashView:
    """Where a deleted mailbox or domain went."""

    path: str
    kind: str
    target: str
    # The sources of the aliases that pointed to a deleted mailbox alone, removed with it
    aliases: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """The trash entry's id, as ``trash list`` shows it and ``restore`` takes it."""
        return Path(self.path).name

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

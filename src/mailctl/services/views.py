"""Plain results the use cases return, so callers never hold database rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DomainView:
    id: int
    name: str
    users_count: int


@dataclass(frozen=True)
class UserView:
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

"""Plain results the use cases return, so callers never hold database rows."""

from __future__ import annotations

from dataclasses import dataclass


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

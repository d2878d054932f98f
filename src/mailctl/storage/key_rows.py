"""Queries on ``api_keys`` and the domains each key is bound to."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailctl.storage.tables import Admin, ApiKey, ApiKeyDomain, Domain


class ApiKeys:
    """Queries on ``api_keys``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def with_admin(self, key_id: str) -> tuple[ApiKey, Admin] | None:
        """A key's row and its admin, by the key's public id: one indexed look-up."""
        query = select(ApiKey, Admin).join(Admin, Admin.id == ApiKey.admin_id)
        found = self.session.execute(query.where(ApiKey.key_id == key_id)).one_or_none()
        return None if found is None else (found[0], found[1])

    def active(self, username: str | None, now: float) -> Sequence[tuple[ApiKey, str]]:
        """Keys neither revoked nor expired, of one admin or (None) of all, oldest first."""
        query = (
            select(ApiKey, Admin.username)
            .join(Admin, Admin.id == ApiKey.admin_id)
            .where(ApiKey.revoked_at.is_(None))
            .where(ApiKey.expires_at.is_(None) | (ApiKey.expires_at > now))
            .order_by(ApiKey.id)
        )
        if username is not None:
            query = query.where(Admin.username == username)
        return [(row[0], row[1]) for row in self.session.execute(query)]

    def domains_of(self, key_ids: Sequence[int]) -> dict[int, list[str]]:
        """The domain names each of these keys is bound to."""
        if not key_ids:
            return {}
        query = (
            select(ApiKeyDomain.key_id, Domain.name)
            .join(Domain, Domain.id == ApiKeyDomain.domain_id)
            .where(ApiKeyDomain.key_id.in_(list(key_ids)))
            .order_by(Domain.name)
        )
        found: dict[int, list[str]] = {}
        for key_id, name in self.session.execute(query):
            found.setdefault(key_id, []).append(name)
        return found

    def domains_map(self, key_id: int) -> dict[int, str]:
        """The domains one key is bound to: id to name."""
        query = (
            select(Domain.id, Domain.name)
            .join(ApiKeyDomain, ApiKeyDomain.domain_id == Domain.id)
            .where(ApiKeyDomain.key_id == key_id)
        )
        return {row[0]: row[1] for row in self.session.execute(query)}

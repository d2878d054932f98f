"""The ``dkim_keys`` repository: each domain's signing keys, and the lock a key change takes."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailctl.storage.tables import DkimKey, Domain


class DkimKeys:
    """Queries on ``dkim_keys``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def for_domain(self, domain_id: int) -> Sequence[DkimKey]:
        return self.session.scalars(
            select(DkimKey).where(DkimKey.domain_id == domain_id).order_by(DkimKey.id)
        ).all()

    def active_for_domain(self, domain_id: int) -> DkimKey | None:
        return self.session.scalars(
            select(DkimKey)
            .where(DkimKey.domain_id == domain_id, DkimKey.active.is_(True))
            .order_by(DkimKey.id.desc())
            .limit(1)
        ).one_or_none()

    def active_with_domains(self) -> list[tuple[str, DkimKey]]:
        """Every active key with its domain's name, for rendering OpenDKIM's tables."""
        rows = self.session.execute(
            select(Domain.name, DkimKey)
            .join(Domain, Domain.id == DkimKey.domain_id)
            .where(DkimKey.active.is_(True))
            .order_by(Domain.name)
        ).all()
        return [(name, key) for name, key in rows]

    def signing_rows(self) -> list[tuple[str, str, str]]:
        """(domain name, selector, private PEM) of every active key, as plain rows.

        What reconcile renders from. Plain tuples, not ORM objects: building an object per
        key costs more than the query itself at thousands of domains.
        """
        # On the session's connection: Core rows, without the ORM's per-row loading.
        rows = self.session.connection().execute(
            select(Domain.name, DkimKey.selector, DkimKey.private_key)
            .join(Domain, Domain.id == DkimKey.domain_id)
            .where(DkimKey.active.is_(True))
            .order_by(Domain.name)
        )
        return list(rows.all())

    def add(
        self, domain_id: int, selector: str, key_type: str, private_key: str, active: bool = True
    ) -> DkimKey:
        key = DkimKey(
            domain_id=domain_id,
            selector=selector,
            key_type=key_type,
            private_key=private_key,
            active=active,
        )
        self.session.add(key)
        self.session.flush()
        return key

    def deactivate_all(self, domain_id: int) -> None:
        self.session.execute(
            update(DkimKey).where(DkimKey.domain_id == domain_id).values(active=False)
        )

    def delete(self, key: DkimKey) -> None:
        self.session.delete(key)
        self.session.flush()

    def lock_domain(self, domain_id: int) -> bool:
        """Lock the domain's row until the transaction ends; False if the domain is gone.

        So two key changes for one domain never leave it with two active keys. The lock
        is a no-op UPDATE rather than ``SELECT ... FOR UPDATE`` because SQLite ignores FOR
        UPDATE but does make a writer wait for the other writers; PostgreSQL and MariaDB
        take the row lock either way. A second key change for the same domain therefore
        waits here, and the key it reads afterwards is the first one's.
        """
        self.session.execute(update(Domain).where(Domain.id == domain_id).values(name=Domain.name))
        return self.session.scalar(select(Domain.id).where(Domain.id == domain_id)) is not None

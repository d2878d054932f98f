"""Row locks for DKIM key changes, so two requests never leave a domain with two active keys."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailctl.storage.tables import Domain


def lock_domain(session: Session, domain_id: int) -> bool:
    """Lock the domain's row until the transaction ends; False if the domain is gone.

    The lock is a no-op UPDATE rather than ``SELECT ... FOR UPDATE`` because SQLite ignores
    FOR UPDATE but does make a writer wait for the other writers; PostgreSQL and MariaDB
    take the row lock either way. A second key change for the same domain therefore waits
    here, and the key it reads afterwards is the first one's.
    """
    session.execute(update(Domain).where(Domain.id == domain_id).values(name=Domain.name))
    return session.scalar(select(Domain.id).where(Domain.id == domain_id)) is not None

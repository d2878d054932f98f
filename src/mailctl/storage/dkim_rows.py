"""Row locks for DKIM key changes, so two requests never leave a domain with two active keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailctl.storage.tables import Domain


def lock_domain(session: Session, domain_id: int) -> bool:
    """Lock the domain's row until the transaction ends; False if the domain is gone.

    PostgreSQL and MariaDB take a row lock (``SELECT ... FOR UPDATE``), so a second key
    change for the same domain waits and then sees the first one's key. SQLite has no row
    locks and ignores the clause; it lets one writer at a time commit anyway.
    """
    found = session.scalar(select(Domain.id).where(Domain.id == domain_id).with_for_update())
    return found is not None

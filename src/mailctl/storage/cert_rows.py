"""Certificate rollback and job-lock recovery: the few queries the keys repositories lack."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mailctl.storage.tables import Certificate, Job, utcnow


def undo_put(
    session: Session,
    name: str,
    written_chain: str,
    previous: tuple[str, str, datetime, str] | None,
) -> bool:
    """Put back the row ``name`` had before a put of ``written_chain``; False if it moved on.

    ``previous`` is (chain, key, not_after, source) as read before the put, or None when the
    put created the row (which is then removed). The row is locked and compared first, so
    a newer pair that another request stored since is never undone.
    """
    row = session.scalars(
        select(Certificate).where(Certificate.name == name).with_for_update()
    ).one_or_none()
    if row is None or row.chain_pem != written_chain:
        return False
    if previous is None:
        session.execute(delete(Certificate).where(Certificate.id == row.id))
        return True
    chain, key, not_after, source = previous
    row.chain_pem, row.key_pem, row.not_after, row.source = chain, key, not_after, source
    # The refused pair is not worth keeping as "previous": nobody should roll back to it.
    row.previous_chain_pem = None
    row.previous_key_pem = None
    row.updated_at = utcnow()
    session.flush()
    return True


def release_stale_lock(session: Session, lock_key: str, idle_since: datetime) -> bool:
    """Fail the job holding ``lock_key`` if it has not moved since ``idle_since``.

    A process that died mid-order never clears its lock; without this its hostname could
    never be ordered again. Returns True if a lock was released.
    """
    result = session.execute(
        update(Job)
        .where(Job.lock_key == lock_key, Job.updated_at < idle_since)
        .values(
            state="failed",
            lock_key=None,
            message="Abandoned: the process running it stopped reporting progress.",
            updated_at=utcnow(),
        )
        # Loaded rows may hold naive datetimes (SQLite, MariaDB) that Python cannot compare
        # with the aware cutoff; the database does the comparison, and nobody reuses them.
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))

"""The ``jobs`` repository: background jobs, their progress, and the locks they hold."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mailctl.storage.tables import Job, utcnow


class Jobs:
    """Queries on ``jobs``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, job_id: str) -> Job | None:
        return self.session.get(Job, job_id)

    def running_for(self, lock_key: str) -> Job | None:
        return self.session.scalars(select(Job).where(Job.lock_key == lock_key)).one_or_none()

    def add(self, job_id: str, kind: str, target: str, lock_key: str | None) -> Job:
        job = Job(id=job_id, kind=kind, target=target, state="pending", lock_key=lock_key)
        self.session.add(job)
        self.session.flush()
        return job

    def update(
        self, job_id: str, *, state: str, message: str | None, release: bool = False
    ) -> None:
        values: dict[str, object] = {"state": state, "message": message, "updated_at": utcnow()}
        if release:
            values["lock_key"] = None
        self.session.execute(update(Job).where(Job.id == job_id).values(**values))

    def release_stale_lock(self, lock_key: str, idle_since: datetime) -> bool:
        """Fail the job holding ``lock_key`` if it has not moved since ``idle_since``.

        A process that died mid-order never clears its lock; without this its hostname
        could never be ordered again. Returns True if a lock was released.
        """
        result = self.session.execute(
            update(Job)
            .where(Job.lock_key == lock_key, Job.updated_at < idle_since)
            .values(
                state="failed",
                lock_key=None,
                message="Abandoned: the process running it stopped reporting progress.",
                updated_at=utcnow(),
            )
            # Loaded rows may hold naive datetimes (SQLite, MariaDB) that Python cannot
            # compare with the aware cutoff; the database compares, and nobody reuses them.
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(result, "rowcount", 0))

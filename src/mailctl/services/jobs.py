"""Background jobs: a row per job in the database, run on the Context's bounded job runner.

The job row is the only shared state: any API replica can report on a job, and its
``lock_key`` (unique, set while the job runs) keeps two jobs for one target apart even
when they were started on different replicas.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailctl.errors import ConflictError, MailctlError, NotFoundError
from mailctl.services.context import Context
from mailctl.storage.tables import Job

log = logging.getLogger("mailctl.jobs")

PENDING, RUNNING, SUCCEEDED, FAILED = "pending", "running", "succeeded", "failed"
MAX_MESSAGE = 2000

Progress = Callable[[str], None]
Work = Callable[[Progress], str]  # does the job, reports steps, returns the final message


@dataclass(frozen=True)
class JobView:
    """A job as callers see it."""

    id: str
    kind: str
    target: str
    state: str
    message: str | None
    created_at: datetime
    updated_at: datetime


class JobBusyError(ConflictError):
    """Another job holds the same lock; ``job_id`` names it, so a caller can follow it."""

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


def _utc(moment: datetime) -> datetime:
    # SQLite and MariaDB hand back naive datetimes; we only ever store UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _view(job: Job) -> JobView:
    return JobView(
        id=job.id,
        kind=job.kind,
        target=job.target,
        state=job.state,
        message=job.message,
        created_at=_utc(job.created_at),
        updated_at=_utc(job.updated_at),
    )


def get_job(ctx: Context, job_id: str) -> JobView:
    """The job ``job_id``; NotFoundError if there is none."""
    text = job_id.strip()
    if not text or len(text) > 36:
        raise NotFoundError(f"There is no job {job_id!r}.")
    with ctx.uow() as uow:
        job = uow.jobs.get(text)
        if job is None:
            raise NotFoundError(f"There is no job {text!r}.")
        return _view(job)


def claim(ctx: Context, kind: str, target: str, lock_key: str, stale_after: float) -> str:
    """Create a job holding ``lock_key`` and return its id; JobBusyError if one holds it.

    A holder that has not reported progress for ``stale_after`` seconds is taken to be
    dead (its process stopped) and is marked failed, so its lock cannot block forever.
    """
    for attempt in range(2):
        job_id = str(uuid.uuid4())
        try:
            with ctx.uow() as uow:
                uow.jobs.add(job_id, kind, target, lock_key)
                uow.commit()
            return job_id
        except ConflictError:
            pass
        with ctx.uow() as uow:
            holder = uow.jobs.running_for(lock_key)
            if holder is None:
                continue  # it ended between our insert and this look-up
            idle_since = datetime.now(UTC) - timedelta(seconds=stale_after)
            if attempt == 0 and uow.jobs.release_stale_lock(lock_key, idle_since):
                uow.commit()
                log.warning("job %s for %s was abandoned; its lock is released", holder.id, target)
                continue
            raise JobBusyError(
                f"A {kind} job for {target} is already running (job {holder.id}); "
                "wait for it to finish.",
                holder.id,
            )
    raise ConflictError(f"Could not start a {kind} job for {target}; try again.")


def report(ctx: Context, job_id: str, message: str) -> None:
    """Record a progress step of a running job."""
    with ctx.uow() as uow:
        uow.jobs.update(job_id, state=RUNNING, message=message[:MAX_MESSAGE])
        uow.commit()


def finish(ctx: Context, job_id: str, succeeded: bool, message: str) -> None:
    """Record the end of a job and release its lock."""
    with ctx.uow() as uow:
        uow.jobs.update(
            job_id,
            state=SUCCEEDED if succeeded else FAILED,
            message=message[:MAX_MESSAGE],
            release=True,
        )
        uow.commit()


def _progress_of(ctx: Context, job_id: str) -> Progress:
    def progress(step: str) -> None:
        try:
            report(ctx, job_id, step)
        except MailctlError as exc:
            # Progress is informative; a database hiccup here must not abort the job.
            log.warning("job %s: could not record progress: %s", job_id, exc.message)

    return progress


def execute(ctx: Context, job_id: str, work: Work) -> str:
    """Run ``work`` as the claimed job ``job_id`` here and now, and return its message.

    The job's end is recorded and its lock released however it ends; its error, if any,
    is raised again for the caller.
    """
    try:
        report(ctx, job_id, "started")
        message = work(_progress_of(ctx, job_id))
    except MailctlError as exc:
        _finish_logged(ctx, job_id, False, exc.message)
        raise
    except Exception as exc:
        _finish_logged(ctx, job_id, False, f"Unexpected error: {exc.__class__.__name__}.")
        raise
    except BaseException:
        _finish_logged(ctx, job_id, False, "Interrupted before it finished.")
        raise
    _finish_logged(ctx, job_id, True, message)
    return message


def run(ctx: Context, job_id: str, work: Work) -> JobView:
    """Run the job like ``execute``, but keep its error in the job row instead of raising.

    Any error fails the job (an unexpected one with its traceback in the log), so a job
    never stays "running" after its thread is gone.
    """
    try:
        execute(ctx, job_id, work)
    except MailctlError:
        pass  # its message is the job's message
    except Exception:
        log.exception("job %s failed unexpectedly", job_id)
    return get_job(ctx, job_id)


def _finish_logged(ctx: Context, job_id: str, succeeded: bool, message: str) -> None:
    try:
        finish(ctx, job_id, succeeded, message)
    except MailctlError as exc:
        # The stale-lock rule in claim() frees the lock later if this write never lands.
        log.error("job %s: could not record its end: %s", job_id, exc.message)


def start(
    ctx: Context, kind: str, target: str, lock_key: str, stale_after: float, work: Work
) -> str:
    """Claim ``lock_key`` for a new job, run ``work`` in the background, return the job id."""
    pool = ctx.job_runner
    pool.reserve()
    try:
        job_id = claim(ctx, kind, target, lock_key, stale_after)
    except BaseException:
        pool.release()
        raise
    pool.submit(
        lambda: run(ctx, job_id, work),
        lambda: _finish_logged(ctx, job_id, False, "Cancelled: the server stopped before it ran."),
    )
    return job_id

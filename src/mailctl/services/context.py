"""What every use case needs: settings, the database, the host adapters, who is acting."""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from mailctl.config import Settings
from mailctl.host.maildir import CHANGES_LOCK, Maildirs
from mailctl.services.hashing import PasswordPool
from mailctl.services.job_runner import JobRunner
from mailctl.services.listings import ListingCache
from mailctl.services.reconcile import NO_FILES_CHANGE, ReconcileOutcome, after_change
from mailctl.services.scope import Scope
from mailctl.services.throttle import Limits, LoginThrottle
from mailctl.services.token_cache import STAMP_NAME, TokenCache
from mailctl.storage.database import Database
from mailctl.storage.reads import Reads, reading
from mailctl.storage.timeouts import Timeouts
from mailctl.storage.uow import UnitOfWork

# How long closing a context waits for background jobs still running.
JOB_WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Actor:
    """Who performs an action, as the audit log records it, and what it may touch
    (``scope``; None for the host's own commands, which may do anything)."""

    name: str
    address: str | None = None
    scope: Scope | None = None


@dataclass
class Context:
    """The wiring of one mailctl process; built once by the API app or a CLI command."""

    settings: Settings
    database: Database
    maildirs: Maildirs
    # Told of every committed change after this host's files followed it (observers only:
    # the reconcile itself is not a listener, so no entry point can forget it).
    change_listeners: list[Callable[[str], None]] = field(default_factory=list)
    # The outcome of the latest reconcile after a change, for a command to report.
    last_reconcile: ReconcileOutcome | None = None
    passwords: PasswordPool = field(default_factory=lambda: PasswordPool(os.cpu_count() or 1))
    # The background jobs of this process (ACME orders); they stop with it (``close``).
    job_runner: JobRunner = field(default_factory=JobRunner)
    # Counts admin logins (in the database, shared by every process) with the settings' limits.
    throttle: LoginThrottle = field(init=False)
    # Tokens checked a moment ago (services.auth.authenticate), keyed by the token.
    tokens: TokenCache[Any] = field(init=False)
    # Listing bodies of the latest revision of the listed tables (services.listings).
    listings: ListingCache = field(init=False)
    _jwt_secret: str | None = None

    def __post_init__(self) -> None:
        self.throttle = LoginThrottle(Limits.from_settings(self.settings), self.uow)
        self.tokens = TokenCache(
            self.settings.data_dir / STAMP_NAME, self.settings.token_cache_seconds
        )
        self.listings = ListingCache(self.settings.list_cache_bytes)

    @classmethod
    def from_settings(cls, settings: Settings) -> Context:
        return cls(
            settings=settings,
            database=Database(
                settings.database_url,
                Timeouts(
                    connect=settings.database_connect_timeout,
                    statement=settings.database_statement_timeout,
                ),
            ),
            maildirs=Maildirs(
                settings.mail_root_path,
                settings.trash_path,
                uid=settings.mail_uid,
                gid=settings.mail_gid,
                lock_path=settings.data_dir / CHANGES_LOCK,
            ),
            passwords=PasswordPool(settings.password_workers),
        )

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.database)

    def reads(self) -> AbstractContextManager[Reads]:
        """A connection for listings, without a unit of work (storage.reads)."""
        return reading(self.database)

    def changed(self, what: str) -> ReconcileOutcome:
        """Bring this host's files in line with a committed change of ``what``, then tell
        the listeners; returns the reconcile's outcome (empty if no file depends on ``what``).

        Every service that changes what the daemons read calls this after its commit, so
        the change reaches the host the same way whoever called the service (API, CLI,
        agent, import, restore). It never raises for a reconcile failure: the change
        stands, the outcome says why the files lag, and the next run tries again. It runs
        in the caller's thread and is bounded (``reconcile.reconcile``).
        """
        outcome = after_change(self, what)
        if what not in NO_FILES_CHANGE:
            self.last_reconcile = outcome
        for listener in list(self.change_listeners):
            listener(what)
        return outcome

    def close(self, job_wait: float = JOB_WAIT_SECONDS) -> None:
        """Stop the job runner (jobs not started are recorded as cancelled; running ones
        get ``job_wait`` seconds), then close the database's connections."""
        self.job_runner.close(job_wait)
        self.database.dispose()

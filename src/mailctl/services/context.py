"""What every use case needs: settings, the database, the host adapters, who is acting."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

from mailctl.config import Settings
from mailctl.host.maildir import CHANGES_LOCK, Maildirs
from mailctl.services.hashing import PasswordPool
from mailctl.services.throttle import Limits, LoginThrottle
from mailctl.storage.database import Database
from mailctl.storage.timeouts import Timeouts
from mailctl.storage.uow import UnitOfWork


@dataclass(frozen=True)
class Actor:
    """Who performs an action, as the audit log records it."""

    name: str
    address: str | None = None


@dataclass
class Context:
    """The wiring of one mailctl process; built once by the API app or a CLI command."""

    settings: Settings
    database: Database
    maildirs: Maildirs
    # Called after a committed change, so the host files can be brought in line with it.
    change_listeners: list[Callable[[str], None]] = field(default_factory=list)
    passwords: PasswordPool = field(default_factory=lambda: PasswordPool(os.cpu_count() or 1))
    # Counts admin logins (in the database, shared by every process) with the settings' limits.
    throttle: LoginThrottle = field(init=False)
    _jwt_secret: str | None = None

    def __post_init__(self) -> None:
        self.throttle = LoginThrottle(Limits.from_settings(self.settings), self.uow)

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

    def changed(self, what: str) -> None:
        """Tell the listeners (reconcile) that committed state about ``what`` changed."""
        for listener in list(self.change_listeners):
            listener(what)

    def close(self) -> None:
        self.database.dispose()

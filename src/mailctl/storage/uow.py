"""The unit of work: one transaction, its repositories, and error translation."""

from __future__ import annotations

from types import TracebackType

from sqlalchemy import exc
from sqlalchemy.orm import Session

from mailctl.storage.certificate_rows import AcmeAccounts, AcmeChallenges, Certificates
from mailctl.storage.database import Database, translate
from mailctl.storage.dkim_rows import DkimKeys
from mailctl.storage.job_rows import Jobs
from mailctl.storage.key_rows import ApiKeys
from mailctl.storage.mailbox_rows import MailboxSettings, MailboxTokens
from mailctl.storage.queries import Admins, Aliases, Audit, Domains, Secrets, Users
from mailctl.storage.throttle_rows import LoginThrottles
from mailctl.storage.token_rows import AdminTokens
from mailctl.storage.totp_rows import AppSettings, TwoFactor


class UnitOfWork:
    """``with UnitOfWork(db) as uow: ...; uow.commit()`` — nothing is kept unless committed.

    Database errors raised inside the block, or by ``commit``, come out as mailctl errors
    (ConflictError, UnavailableError, ...), never as driver exceptions.
    """

    session: Session

    def __init__(self, database: Database) -> None:
        self.database = database

    def __enter__(self) -> UnitOfWork:
        self.session = self.database.sessions()
        self.domains = Domains(self.session)
        self.users = Users(self.session)
        self.aliases = Aliases(self.session)
        self.admins = Admins(self.session)
        self.audit = Audit(self.session)
        self.secrets = Secrets(self.session)
        self.dkim_keys = DkimKeys(self.session)
        self.certificates = Certificates(self.session)
        self.acme_accounts = AcmeAccounts(self.session)
        self.acme_challenges = AcmeChallenges(self.session)
        self.jobs = Jobs(self.session)
        self.login_throttles = LoginThrottles(self.session)
        self.admin_tokens = AdminTokens(self.session)
        self.api_keys = ApiKeys(self.session)
        self.two_factor = TwoFactor(self.session)
        self.app_settings = AppSettings(self.session)
        self.mailbox_settings = MailboxSettings(self.session)
        self.mailbox_tokens = MailboxTokens(self.session)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        try:
            self.session.rollback()
        except exc.SQLAlchemyError:
            pass  # the original error below says more than a failed rollback
        finally:
            self.session.close()
        if isinstance(error, exc.SQLAlchemyError):
            raise translate(error) from error

    def flush(self) -> None:
        try:
            self.session.flush()
        except exc.SQLAlchemyError as error:
            raise translate(error) from error

    def commit(self) -> None:
        try:
            self.session.commit()
        except exc.SQLAlchemyError as error:
            self.session.rollback()
            raise translate(error) from error

"""Repositories for TLS certificates and the ACME state that issues them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailctl.storage.tables import AcmeAccount, AcmeChallenge, Certificate, utcnow


class Certificates:
    """Queries on ``certificates``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def by_name(self, name: str) -> Certificate | None:
        return self.session.scalars(
            select(Certificate).where(Certificate.name == name)
        ).one_or_none()

    def list(self) -> Sequence[Certificate]:
        return self.session.scalars(select(Certificate).order_by(Certificate.name)).all()

    def pem_rows(self) -> Sequence[tuple[str, str, str]]:
        """(name, chain PEM, key PEM) of every certificate, as plain rows, for rendering."""
        rows = self.session.connection().execute(
            select(Certificate.name, Certificate.chain_pem, Certificate.key_pem).order_by(
                Certificate.name
            )
        )
        return rows.all()

    def expiring_before(self, moment: datetime) -> Sequence[Certificate]:
        return self.session.scalars(
            select(Certificate).where(Certificate.not_after < moment).order_by(Certificate.name)
        ).all()

    def put(
        self, name: str, chain_pem: str, key_pem: str, not_after: datetime, source: str
    ) -> Certificate:
        """Store a pair under ``name``, keeping the pair it replaces for rollback."""
        current = self.by_name(name)
        if current is None:
            current = Certificate(
                name=name, chain_pem=chain_pem, key_pem=key_pem, not_after=not_after, source=source
            )
            self.session.add(current)
        else:
            current.previous_chain_pem = current.chain_pem
            current.previous_key_pem = current.key_pem
            current.chain_pem = chain_pem
            current.key_pem = key_pem
            current.not_after = not_after
            current.source = source
            current.updated_at = utcnow()
        self.session.flush()
        return current

    def undo_put(
        self,
        name: str,
        written_chain: str,
        previous: tuple[str, str, datetime, str] | None,
    ) -> bool:
        """Put back the row ``name`` had before a put of ``written_chain``; False if it moved on.

        ``previous`` is (chain, key, not_after, source) as read before the put, or None when
        the put created the row (which is then removed). The row is locked and compared
        first, so a newer pair that another request stored since is never undone.
        """
        row = self.session.scalars(
            select(Certificate).where(Certificate.name == name).with_for_update()
        ).one_or_none()
        if row is None or row.chain_pem != written_chain:
            return False
        if previous is None:
            self.session.execute(delete(Certificate).where(Certificate.id == row.id))
            return True
        chain, key, not_after, source = previous
        row.chain_pem, row.key_pem, row.not_after, row.source = chain, key, not_after, source
        # The refused pair is not worth keeping as "previous": nobody should roll back to it.
        row.previous_chain_pem = None
        row.previous_key_pem = None
        row.updated_at = utcnow()
        self.session.flush()
        return True


class AcmeAccounts:
    """Queries on ``acme_accounts``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def for_directory(self, directory_url: str) -> AcmeAccount | None:
        return self.session.scalars(
            select(AcmeAccount).where(AcmeAccount.directory_url == directory_url)
        ).one_or_none()

    def add(self, directory_url: str, key_pem: str) -> AcmeAccount:
        account = AcmeAccount(directory_url=directory_url, key_pem=key_pem)
        self.session.add(account)
        self.session.flush()
        return account


class AcmeChallenges:
    """Queries on ``acme_challenges``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, token: str) -> AcmeChallenge | None:
        return self.session.get(AcmeChallenge, token)

    def add(self, token: str, key_authorization: str, hostname: str) -> None:
        self.session.merge(
            AcmeChallenge(token=token, key_authorization=key_authorization, hostname=hostname)
        )
        self.session.flush()

    def remove(self, token: str) -> None:
        self.session.execute(delete(AcmeChallenge).where(AcmeChallenge.token == token))

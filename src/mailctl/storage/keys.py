"""Repositories for DKIM keys, certificates, ACME state and background jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from mailctl.storage.tables import (
    AcmeAccount,
    AcmeChallenge,
    Certificate,
    DkimKey,
    Domain,
    Job,
    utcnow,
)


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

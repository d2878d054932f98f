"""Repositories: the queries the services need, one small class per table."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

from sqlalchemy import ColumnElement, CursorResult, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from mailctl.storage.tables import (
    Admin,
    AdminDomain,
    Alias,
    ApiKeyDomain,
    AuditEntry,
    Base,
    Domain,
    MailboxUsage,
    Secret,
    User,
    utcnow,
)

# Rows per IN (...) list: well under every backend's limit on bound parameters.
_IN_CHUNK = 500


def _delete_row(session: Session, row: Base, condition: ColumnElement[bool]) -> bool:
    """Delete one row by a condition and say whether this transaction is the one that did.

    Two requests may both have read the row; only the DELETE that matched it wins, the
    other sees a row count of 0 (SQLite serialises writers, PostgreSQL and MariaDB wait
    for the first one's row lock), so a delete happens exactly once.
    """
    result = session.execute(
        delete(type(row)).where(condition), execution_options={"synchronize_session": False}
    )
    session.expunge(row)
    return bool(cast(CursorResult[Any], result).rowcount == 1)


class Domains:
    """Queries on ``virtual_domains``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, domain_id: int) -> Domain | None:
        return self.session.get(Domain, domain_id)

    def by_name(self, name: str, *, lock: bool = False) -> Domain | None:
        """The domain called ``name``; ``lock`` holds its row until the transaction ends."""
        query = select(Domain).where(Domain.name == name)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def list_with_counts(self) -> list[tuple[Domain, int]]:
        """Every domain with its mailbox count, in one query whatever the number of domains."""
        counts = (
            select(User.domain_id, func.count(User.id).label("n"))
            .group_by(User.domain_id)
            .subquery()
        )
        rows = self.session.execute(
            select(Domain, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.domain_id == Domain.id)
            .order_by(Domain.id)
        ).all()
        return [(domain, int(n)) for domain, n in rows]

    def count_users(self, domain_id: int) -> int:
        return int(
            self.session.scalar(select(func.count(User.id)).where(User.domain_id == domain_id)) or 0
        )

    def locked(self, domain_id: int) -> Domain | None:
        """The domain, its row held until the transaction ends: creates that check its
        limits wait for each other instead of both passing the check.

        SQLite has no row locks: the transaction takes the database's write lock before it
        reads, so it must not have written yet.
        """
        if self.session.get_bind().dialect.name == "sqlite":
            self.session.execute(text("BEGIN IMMEDIATE"))
        query = select(Domain).where(Domain.id == domain_id).with_for_update()
        return self.session.scalars(query).one_or_none()

    def count_aliases(self, domain_id: int) -> int:
        return int(
            self.session.scalar(select(func.count(Alias.id)).where(Alias.domain_id == domain_id))
            or 0
        )

    def quota_total(self, domain_id: int, *, without_user: int | None = None) -> int:
        """The quotas of the domain's mailboxes added up (unlimited ones add nothing)."""
        query = select(func.coalesce(func.sum(User.quota_bytes), 0)).where(
            User.domain_id == domain_id
        )
        if without_user is not None:
            query = query.where(User.id != without_user)
        return int(self.session.scalar(query) or 0)

    def unlimited_mailboxes(self, domain_id: int) -> int:
        """How many of the domain's mailboxes have no storage quota."""
        query = select(func.count(User.id)).where(
            User.domain_id == domain_id, func.coalesce(User.quota_bytes, 0) == 0
        )
        return int(self.session.scalar(query) or 0)

    def add(self, name: str) -> Domain:
        domain = Domain(name=name)
        self.session.add(domain)
        self.session.flush()
        return domain

    def delete(self, domain: Domain) -> bool:
        """Delete the domain and its rows; False if another transaction deleted it first."""
        # Explicit deletes rather than relying on ON DELETE CASCADE alone, so the outcome
        # is the same on every backend and in the same transaction.
        self.session.execute(delete(Alias).where(Alias.domain_id == domain.id))
        self.session.execute(
            delete(MailboxUsage).where(
                MailboxUsage.username.in_(
                    select(User.email).where(User.domain_id == domain.id).scalar_subquery()
                )
            )
        )
        self.session.execute(delete(User).where(User.domain_id == domain.id))
        return _delete_row(self.session, domain, Domain.id == domain.id)


class Users:
    """Queries on ``virtual_users``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, user_id: int) -> User | None:
        return self.session.get(User, user_id)

    def by_email(self, email: str, *, lock: bool = False) -> User | None:
        """The mailbox ``email``; ``lock`` holds its row until the transaction ends."""
        query = select(User).where(User.email == email)
        if lock:
            query = query.with_for_update()
        return self.session.scalars(query).one_or_none()

    def list_for_domain(self, domain_id: int) -> Sequence[User]:
        return self.session.scalars(
            select(User).where(User.domain_id == domain_id).order_by(User.id)
        ).all()

    def add(
        self,
        domain_id: int,
        email: str,
        password: str,
        quota_bytes: int | None = None,
        quota_messages: int | None = None,
    ) -> User:
        user = User(
            domain_id=domain_id,
            email=email,
            password=password,
            quota_bytes=quota_bytes,
            quota_messages=quota_messages,
        )
        self.session.add(user)
        self.session.flush()
        return user

    def add_many(
        self,
        domain_id: int,
        rows: Sequence[tuple[str, str]],
        quotas: Sequence[int | None] | None = None,
    ) -> list[tuple[int, str]]:
        """Insert mailboxes ``(email, password)`` in one executemany, with ``quotas`` (bytes,
        one per row) when given; their ``(id, email)`` in the order given."""
        if not rows:
            return []
        now = utcnow()
        # RETURNING in no set order lets every backend send up to a thousand rows per
        # statement; the addresses (unique) say which id is whose.
        result = self.session.execute(
            insert(User).returning(User.id, User.email),
            [
                {
                    "domain_id": domain_id,
                    "email": email,
                    "password": password,
                    "created_at": now,
                    "quota_bytes": quotas[index] if quotas is not None else None,
                }
                for index, (email, password) in enumerate(rows)
            ],
        )
        ids = {str(email): int(ident) for ident, email in result.all()}
        return [(ids[email], email) for email, _ in rows]

    def existing(self, emails: Sequence[str]) -> list[str]:
        """Which of ``emails`` are mailboxes already, in the order given."""
        found: set[str] = set()
        for start in range(0, len(emails), _IN_CHUNK):
            chunk = emails[start : start + _IN_CHUNK]
            found.update(self.session.scalars(select(User.email).where(User.email.in_(chunk))))
        return [email for email in emails if email in found]

    def delete(self, user: User) -> bool:
        """Delete the mailbox; False if another transaction deleted it first."""
        gone = _delete_row(self.session, user, User.id == user.id)
        if gone:
            # What Dovecot counted belongs to the mail, which goes to the trash.
            self.session.execute(delete(MailboxUsage).where(MailboxUsage.username == user.email))
        return gone

    def usage(self, email: str) -> tuple[int, int]:
        """(bytes, messages) Dovecot last counted in the mailbox; (0, 0) before it did."""
        row = self.session.execute(
            select(MailboxUsage.bytes, MailboxUsage.messages).where(MailboxUsage.username == email)
        ).one_or_none()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))


class Aliases:
    """Queries on ``virtual_aliases``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def list_for_domain(self, domain_id: int) -> Sequence[Alias]:
        return self.session.scalars(
            select(Alias).where(Alias.domain_id == domain_id).order_by(Alias.id)
        ).all()

    def add(self, domain_id: int, source: str, destination: str) -> Alias:
        alias = Alias(domain_id=domain_id, source=source, destination=destination)
        self.session.add(alias)
        self.session.flush()
        return alias

    def by_destination(self, destination: str) -> Sequence[Alias]:
        return self.session.scalars(
            select(Alias).where(Alias.destination == destination).order_by(Alias.id)
        ).all()

    def by_source(self, source: str) -> Sequence[Alias]:
        return self.session.scalars(
            select(Alias).where(Alias.source == source).order_by(Alias.id)
        ).all()

    def delete(self, alias: Alias) -> bool:
        """Delete the alias; False if another transaction deleted it first."""
        return _delete_row(self.session, alias, Alias.id == alias.id)


class Admins:
    """Queries on ``admins``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, admin_id: int) -> Admin | None:
        return self.session.get(Admin, admin_id)

    def by_username(self, username: str) -> Admin | None:
        return self.session.scalars(select(Admin).where(Admin.username == username)).one_or_none()

    def list(self) -> Sequence[Admin]:
        return self.session.scalars(select(Admin).order_by(Admin.id)).all()

    def count(self) -> int:
        return int(self.session.scalar(select(func.count(Admin.id))) or 0)

    def add(self, username: str, password: str, role: str = "superadmin") -> Admin:
        admin = Admin(username=username, password=password, role=role)
        self.session.add(admin)
        self.session.flush()
        return admin

    def enabled_superadmins(self) -> int:
        query = select(func.count(Admin.id)).where(
            (Admin.role == "superadmin") & (Admin.disabled.is_(False))
        )
        return int(self.session.scalar(query) or 0)

    def granted(self, admin_id: int) -> dict[int, str]:
        """The domains granted to an admin: id to name."""
        query = (
            select(Domain.id, Domain.name)
            .join(AdminDomain, AdminDomain.domain_id == Domain.id)
            .where(AdminDomain.admin_id == admin_id)
            .order_by(Domain.name)
        )
        return {row[0]: row[1] for row in self.session.execute(query)}

    def grants(self) -> dict[int, builtins.list[str]]:
        """Every admin's granted domain names, by admin id (one query, for a listing)."""
        query = (
            select(AdminDomain.admin_id, Domain.name)
            .join(Domain, Domain.id == AdminDomain.domain_id)
            .order_by(Domain.name)
        )
        found: dict[int, builtins.list[str]] = {}
        for admin_id, name in self.session.execute(query):
            found.setdefault(admin_id, []).append(name)
        return found

    def grant(self, admin_id: int, domain_id: int) -> bool:
        """Grant a domain; False if it was granted already."""
        if self.session.get(AdminDomain, (admin_id, domain_id)) is not None:
            return False
        self.session.add(AdminDomain(admin_id=admin_id, domain_id=domain_id))
        self.session.flush()
        return True

    def ungrant(self, admin_id: int, domain_id: int) -> bool:
        """Take a domain back; False if it was not granted."""
        result = self.session.execute(
            delete(AdminDomain).where(
                (AdminDomain.admin_id == admin_id) & (AdminDomain.domain_id == domain_id)
            ),
            execution_options={"synchronize_session": False},
        )
        return bool(cast(CursorResult[Any], result).rowcount == 1)

    def delete(self, admin: Admin) -> None:
        self.session.delete(admin)
        self.session.flush()

    def rehash(self, admin_id: int, old: str, new: str) -> bool:
        """Store ``new`` as the admin's hash of the same password, if ``old`` is still stored.

        The token generation stays: the password did not change, so its tokens stay
        valid. False when the row is gone or holds another hash (changed meanwhile).
        """
        result = self.session.execute(
            update(Admin)
            .where((Admin.id == admin_id) & (Admin.password == old))
            .values(password=new),
            execution_options={"synchronize_session": False},
        )
        return bool(cast(CursorResult[Any], result).rowcount == 1)


class Acting(Protocol):
    """Who an audit entry names: the acting user, and the address it came from, if any."""

    @property
    def name(self) -> str: ...

    @property
    def address(self) -> str | None: ...


@dataclass(frozen=True)
class AuditQuery:
    """Which audit entries to read: each field given narrows them (times are UTC, and
    both ends are included)."""

    admin: str | None = None
    action: str | None = None
    domain: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class Audit:
    """Writes and reads ``audit_log``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def record(
        self,
        actor: Acting,
        action: str,
        target: str,
        detail: str | None = None,
        *,
        domain: str | None = None,
    ) -> AuditEntry:
        """Record that ``actor`` did ``action`` to ``target``, in this transaction.

        ``domain`` is the name of the domain the action concerns (None for admins, keys,
        tokens, certificates): the entry is shown to whoever sees that domain. The one way
        any service writes the audit log; long values are cut to the columns. A detail
        must never hold a secret (a password, a token, a key): the log is read over HTTP.
        """
        address = actor.address or None
        entry = AuditEntry(
            admin=actor.name[:64],
            action=action[:64],
            target=target[:320],
            client_address=address and address[:64],
            detail=detail,
            domain=domain and domain[:253],
        )
        self.session.add(entry)
        return entry

    def record_many(
        self,
        actor: Acting,
        action: str,
        targets: Sequence[str],
        detail: str | None = None,
        *,
        domain: str | None = None,
    ) -> None:
        """Record one entry per target in one statement, as ``record`` would each."""
        if not targets:
            return
        address = actor.address or None
        now = utcnow()
        self.session.execute(
            insert(AuditEntry),
            [
                {
                    "at": now,
                    "admin": actor.name[:64],
                    "action": action[:64],
                    "target": target[:320],
                    "client_address": address and address[:64],
                    "detail": detail,
                    "domain": domain and domain[:253],
                }
                for target in targets
            ],
        )

    def recent(self, limit: int = 100) -> Sequence[AuditEntry]:
        return self.session.scalars(
            select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        ).all()

    def entries(
        self,
        wanted: AuditQuery,
        *,
        before: int | None = None,
        limit: int | None = None,
        granted_to: int | None = None,
        bound_to_key: int | None = None,
    ) -> Sequence[AuditEntry]:
        """The entries that match, newest first; only those older than the entry
        ``before`` (a cursor), and only those of the domains granted to an admin, or bound
        to an API key, when one is named (the domains as they are now)."""
        query = select(AuditEntry)
        if wanted.admin is not None:
            query = query.where(AuditEntry.admin == wanted.admin)
        if wanted.action is not None:
            query = query.where(AuditEntry.action == wanted.action)
        if wanted.domain is not None:
            query = query.where(AuditEntry.domain == wanted.domain)
        if wanted.since is not None:
            query = query.where(AuditEntry.at >= wanted.since)
        if wanted.until is not None:
            query = query.where(AuditEntry.at <= wanted.until)
        if granted_to is not None:
            granted = select(AdminDomain.domain_id).where(AdminDomain.admin_id == granted_to)
            names = select(Domain.name).where(Domain.id.in_(granted))
            query = query.where(AuditEntry.domain.in_(names))
        if bound_to_key is not None:
            bound = select(ApiKeyDomain.domain_id).where(ApiKeyDomain.key_id == bound_to_key)
            names = select(Domain.name).where(Domain.id.in_(bound))
            query = query.where(AuditEntry.domain.in_(names))
        if before is not None:
            query = query.where(AuditEntry.id < before)
        query = query.order_by(AuditEntry.id.desc())
        if limit is not None:
            query = query.limit(limit)
        return self.session.scalars(query).all()


class Secrets:
    """Generated secrets in ``app_secrets``."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def get(self, name: str) -> str | None:
        secret = self.session.get(Secret, name)
        return secret.value if secret else None

    def add(self, name: str, value: str) -> None:
        self.session.add(Secret(name=name, value=value))
        self.session.flush()

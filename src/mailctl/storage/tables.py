"""Table definitions; the virtual_* tables keep the shape Postfix and Dovecot query."""

from __future__ import annotations

from datetime import UTC, date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so migrations read the same on SQLite, PostgreSQL and MariaDB.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only autoincrements INTEGER PRIMARY KEY; elsewhere ids are 64-bit.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Domain(Base):
    """A mail domain; Postfix's virtual_mailbox_domains query reads ``name``."""

    __tablename__ = "virtual_domains"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(253), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Limits checked when a mailbox or alias is created or a quota set; NULL or 0: none.
    max_mailboxes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_aliases: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    users: Mapped[list[User]] = relationship(back_populates="domain", passive_deletes=True)


# The limit columns of a domain, as a trash manifest keeps them.
LIMIT_COLUMNS = ("max_mailboxes", "max_aliases", "max_quota_bytes")


class User(Base):
    """A mailbox; Dovecot's passdb reads ``email`` and the ``{SCHEME}`` ``password``."""

    __tablename__ = "virtual_users"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    domain_id: Mapped[int] = mapped_column(
        Id, ForeignKey("virtual_domains.id", ondelete="CASCADE"), nullable=False, index=True
    )
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    password: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Dovecot's userdb turns these into the mailbox's quota rule; NULL or 0: unlimited.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quota_messages: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    domain: Mapped[Domain] = relationship(back_populates="users")


class MailboxUsage(Base):
    """What a mailbox holds, as Dovecot's quota_clone last wrote it (mailctl only reads it)."""

    __tablename__ = "mailbox_usage"

    username: Mapped[str] = mapped_column(String(254), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")
    messages: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0, server_default="0")


class Alias(Base):
    """A forwarding address; Postfix's virtual_alias_maps query reads it."""

    __tablename__ = "virtual_aliases"
    __table_args__ = (UniqueConstraint("source", "destination", name="uq_virtual_aliases_pair"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    domain_id: Mapped[int] = mapped_column(
        Id, ForeignKey("virtual_domains.id", ondelete="CASCADE"), nullable=False, index=True
    )
    source: Mapped[str] = mapped_column(String(254), nullable=False, index=True)
    destination: Mapped[str] = mapped_column(String(254), nullable=False)


class Admin(Base):
    """Someone allowed to use the API; the password is an ``{ARGON2ID}`` hash."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Raised by a password change or "revoke all": a token is valid only while the
    # generation it was issued under is the admin's current one.
    token_generation: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default="0"
    )
    # "superadmin" (every domain, the admins, the host's certificates) or "domain_admin"
    # (only the domains granted in admin_domains).
    role: Mapped[str] = mapped_column(
        String(16), nullable=False, default="superadmin", server_default="superadmin"
    )
    # A disabled admin can neither log in nor use a token or key it holds.
    disabled: Mapped[bool] = mapped_column(
        Boolean, nullable=False, default=False, server_default=false()
    )


class AdminDomain(Base):
    """A domain granted to a domain admin."""

    __tablename__ = "admin_domains"

    admin_id: Mapped[int] = mapped_column(
        Id, ForeignKey("admins.id", ondelete="CASCADE"), primary_key=True
    )
    domain_id: Mapped[int] = mapped_column(
        Id, ForeignKey("virtual_domains.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class ApiKey(Base):
    """A long-lived key for scripts, made by an admin for itself or by a superadmin.

    Only a SHA-256 of the key's secret part is kept: the key is random (256 bits), so a
    fast hash is as safe as a slow one and costs nothing per request. ``key_id`` is the
    public part, by which a request's key is found. Times are seconds since the epoch.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key_id: Mapped[str] = mapped_column(String(32), unique=True, nullable=False)
    secret_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    admin_id: Mapped[int] = mapped_column(
        Id, ForeignKey("admins.id", ondelete="CASCADE"), nullable=False, index=True
    )
    name: Mapped[str] = mapped_column(String(64), nullable=False)
    read_only: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    # False: only the domains in api_key_domains (and still only those its admin sees).
    all_domains: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    # Client address ranges (CIDR, comma-separated) the key is accepted from; None: any.
    networks: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Double, nullable=False)
    expires_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64), nullable=False)


class ApiKeyDomain(Base):
    """A domain an API key is bound to."""

    __tablename__ = "api_key_domains"

    key_id: Mapped[int] = mapped_column(
        Id, ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    domain_id: Mapped[int] = mapped_column(
        Id, ForeignKey("virtual_domains.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class AdminToken(Base):
    """A token issued to an admin, by its ``jti``; the token itself is never stored.

    A token is accepted only while its row exists, is not revoked and carries the admin's
    current ``token_generation``. Times are seconds since the epoch, as in
    ``login_throttle``; rows are pruned once their token has expired.
    """

    __tablename__ = "admin_tokens"
    __table_args__ = (Index("ix_admin_tokens_expires_at", "expires_at"),)

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    admin_id: Mapped[int] = mapped_column(
        Id, ForeignKey("admins.id", ondelete="CASCADE"), nullable=False, index=True
    )
    generation: Mapped[int] = mapped_column(Integer, nullable=False)
    issued_at: Mapped[float] = mapped_column(Double, nullable=False)
    expires_at: Mapped[float] = mapped_column(Double, nullable=False)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    user_agent: Mapped[str | None] = mapped_column(String(200), nullable=True)


class AuditEntry(Base):
    """One mutating action: who did what to which target, when and from where."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_at", "at"),
        # A domain's entries newest first (GET /audit?domain=...), one index seek.
        Index("ix_audit_log_domain", "domain", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, nullable=False)
    admin: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(String(320), nullable=False)
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The name of the domain the entry concerns; None for admins, keys, tokens and
    # certificates. A name rather than a key, so it outlives the domain it names.
    domain: Mapped[str | None] = mapped_column(String(253), nullable=True)


class Secret(Base):
    """Generated secrets shared by every API replica (the JWT signing key)."""

    __tablename__ = "app_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class DkimKey(Base):
    """A domain's DKIM signing key; the private half never leaves the database and host."""

    __tablename__ = "dkim_keys"
    __table_args__ = (UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_selector"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    domain_id: Mapped[int] = mapped_column(
        Id, ForeignKey("virtual_domains.id", ondelete="CASCADE"), nullable=False, index=True
    )
    selector: Mapped[str] = mapped_column(String(63), nullable=False)
    key_type: Mapped[str] = mapped_column(String(16), nullable=False)
    private_key: Mapped[str] = mapped_column(Text, nullable=False)
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Certificate(Base):
    """A TLS certificate chain and key, by name (a hostname), with the previous pair kept."""

    __tablename__ = "certificates"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(253), unique=True, nullable=False)
    chain_pem: Mapped[str] = mapped_column(Text, nullable=False)
    key_pem: Mapped[str] = mapped_column(Text, nullable=False)
    not_after: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # upload | acme
    previous_chain_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    previous_key_pem: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AcmeAccount(Base):
    """The ACME account key for one directory URL."""

    __tablename__ = "acme_accounts"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    directory_url: Mapped[str] = mapped_column(String(512), unique=True, nullable=False)
    key_pem: Mapped[str] = mapped_column(Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AcmeChallenge(Base):
    """A pending HTTP-01 answer, in the database so every API replica can serve it."""

    __tablename__ = "acme_challenges"

    token: Mapped[str] = mapped_column(String(255), primary_key=True)
    key_authorization: Mapped[str] = mapped_column(Text, nullable=False)
    hostname: Mapped[str] = mapped_column(String(253), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """A background action (an ACME order) and its progress.

    ``lock_key`` is set while the job runs and cleared when it ends; its unique index is
    what keeps two orders for the same hostname from running at once, on every backend.
    """

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    target: Mapped[str] = mapped_column(String(253), nullable=False)
    state: Mapped[str] = mapped_column(
        String(16), nullable=False
    )  # pending|running|succeeded|failed
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    lock_key: Mapped[str | None] = mapped_column(String(300), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LoginThrottleRow(Base):
    """Recent failed logins of one client address, or of one (address, username) pair.

    Times are seconds since the epoch, so every backend compares them the same way. In the
    database rather than in memory so that every API process counts against one limit.
    """

    __tablename__ = "login_throttle"
    __table_args__ = (Index("ix_login_throttle_expires_at", "expires_at"),)

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_at: Mapped[float] = mapped_column(Double, nullable=False)
    blocked_until: Mapped[float | None] = mapped_column(Double, nullable=True)
    expires_at: Mapped[float] = mapped_column(Double, nullable=False)


class AdminTotp(Base):
    """An admin's TOTP (RFC 6238) second factor; one row per admin that began enrolling.

    ``secret`` is the TOTP secret sealed with AES-GCM under a key kept outside the
    database (``services.totp_key``): a dump of the database alone does not give the codes.
    ``last_step`` is the latest 30-second step a code was accepted for: a code of that
    step or an earlier one is refused, so no code works twice. Times are seconds since
    the epoch.
    """

    __tablename__ = "admin_totp"

    admin_id: Mapped[int] = mapped_column(
        Id, ForeignKey("admins.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(String(255), nullable=False)
    created_at: Mapped[float] = mapped_column(Double, nullable=False)
    # None until a first code confirmed the enrolment: only then does login ask for codes.
    confirmed_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class AdminRecoveryCode(Base):
    """A one-time recovery code of an admin, as a keyed digest (HMAC-SHA256), never the code.

    The codes are random (80 bits), so a fast keyed hash is as safe as a slow one; its key
    is outside the database, so a dump cannot even be used to test guesses.
    """

    __tablename__ = "admin_recovery_codes"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    admin_id: Mapped[int] = mapped_column(
        Id, ForeignKey("admins.id", ondelete="CASCADE"), nullable=False, index=True
    )
    digest: Mapped[str] = mapped_column(String(64), nullable=False)
    used_at: Mapped[float | None] = mapped_column(Double, nullable=True)


class AppSetting(Base):
    """A setting of the whole server that superadmins change at run time, by name."""

    __tablename__ = "app_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, nullable=False)


class MailboxForwarding(Base):
    """Where a mailbox's mail is forwarded (rendered into its Sieve script), and whether a
    copy stays; no row: no forwarding. ``destinations`` holds one address per line."""

    __tablename__ = "mailbox_forwarding"

    user_id: Mapped[int] = mapped_column(
        Id, ForeignKey("virtual_users.id", ondelete="CASCADE"), primary_key=True
    )
    destinations: Mapped[str] = mapped_column(Text, nullable=False)
    keep_copy: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[float] = mapped_column(Double, nullable=False)


class MailboxAutoreply(Base):
    """A mailbox's auto-reply (Sieve ``vacation``); kept when turned off, so it can be
    turned on again as it was. Dates are inclusive, in UTC; None: no bound."""

    __tablename__ = "mailbox_autoreply"

    user_id: Mapped[int] = mapped_column(
        Id, ForeignKey("virtual_users.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    subject: Mapped[str] = mapped_column(String(255), nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)
    starts_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    ends_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    updated_at: Mapped[float] = mapped_column(Double, nullable=False)


class MailboxToken(Base):
    """A token issued to a mailbox owner at ``POST /self/auth``, by its ``jti``.

    Accepted only while its row exists, is not revoked, and ``password_digest`` is that of
    the mailbox's current password hash: any change of the password (by its owner, an
    admin, the CLI or an import) refuses the tokens issued before it.
    """

    __tablename__ = "mailbox_tokens"
    __table_args__ = (Index("ix_mailbox_tokens_expires_at", "expires_at"),)

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Id, ForeignKey("virtual_users.id", ondelete="CASCADE"), nullable=False, index=True
    )
    password_digest: Mapped[str] = mapped_column(String(64), nullable=False)
    issued_at: Mapped[float] = mapped_column(Double, nullable=False)
    expires_at: Mapped[float] = mapped_column(Double, nullable=False)
    revoked_at: Mapped[float | None] = mapped_column(Double, nullable=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(16), nullable=True)
    client_address: Mapped[str | None] = mapped_column(String(64), nullable=True)


class ListRevision(Base):
    """A counter the database raises on every write to what a listing shows.

    Triggers (migration 0012) raise the row ``LISTINGS`` in the writing transaction, for
    any change to the domains, the mailboxes, the grants and key bindings; a process keeps
    its listings' bodies while the counter stands still (services.listings).
    """

    __tablename__ = "list_revisions"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, nullable=False)


# The row of list_revisions the triggers raise.
LISTINGS = "domains"

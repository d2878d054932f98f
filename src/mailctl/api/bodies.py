"""The JSON bodies the API answers, as /openapi.json describes them.

These models only document: routes build plain dicts (``api.shapes``, the route modules),
and the tests check the live answers against the document these models produce.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ErrorBody(BaseModel):
    """Every error: ``result`` false and a sentence that says what went wrong."""

    result: Literal[False]
    msg: str


class JobBusy(ErrorBody):
    """409 while another order for the name runs: its job id, to follow it."""

    job_id: str


class SecondFactorNeeded(ErrorBody):
    """401 of a login: ``totp_required`` true when the password was right and a two-factor
    code is missing, wrong or used (absent for a wrong password)."""

    totp_required: bool = False


class Token(BaseModel):
    """A login's token; where the server requires two-factor login and this admin has not
    enrolled yet, ``totp_enrolment_required`` is true and the token may only enrol."""

    result: Literal[True]
    token: str
    totp_enrolment_required: bool = False
    msg: str = ""  # only with totp_enrolment_required: what to do next


class TotpEnrolment(BaseModel):
    """A new TOTP secret, shown this once: type it in, or scan the QR code of ``uri``."""

    result: Literal[True]
    msg: str
    secret: str  # base32
    uri: str  # otpauth://totp/...
    qr_svg: str  # an SVG document
    qr_png: str  # a PNG image, base64


class TotpConfirmed(BaseModel):
    """Two-factor login is on; the recovery codes are shown this once, each works once."""

    result: Literal[True]
    msg: str
    recovery_codes: list[str]


class TotpStatus(BaseModel):
    result: Literal[True]
    username: str
    enrolled: bool  # a secret was made
    confirmed: bool  # a first code confirmed it: logins ask for codes
    recovery_codes_left: int
    required: bool  # the server requires two-factor login of every admin


class TotpPolicy(BaseModel):
    result: Literal[True]
    msg: str
    required: bool
    not_enrolled: list[str]  # enabled admins without a confirmed second factor


class Domain(BaseModel):
    id: int
    name: str
    users_count: int


class User(BaseModel):
    id: int
    domain_id: int
    email: str


class Alias(BaseModel):
    id: int
    domain_id: int
    source: str
    destination: str


class DomainList(BaseModel):
    result: Literal[True]
    domains: list[Domain]
    # Only when a page was asked for (limit): where the next page starts, null after the last.
    next_offset: int | None = None
    next_after: int | None = None


class DomainCreated(BaseModel):
    result: Literal[True]
    msg: str
    domain: Domain
    user: User | None = None  # present when username and password created a first mailbox


class Trashed(BaseModel):
    """A deleted domain: where its mail went in the trash, and the id to restore it."""

    result: Literal[True]
    msg: str
    trash: str
    trash_id: str


class UserTrashed(Trashed):
    aliases_removed: list[str]


class UserUsage(User):
    """A mailbox with its quota (null: unlimited) and what Dovecot last counted in it."""

    quota_bytes: int | None
    quota_messages: int | None
    used_bytes: int
    used_messages: int


class UserList(BaseModel):
    result: Literal[True]
    users: list[UserUsage]
    next_offset: int | None = None  # only when a page was asked for, as in DomainList
    next_after: int | None = None


class UserChanged(BaseModel):
    result: Literal[True]
    msg: str
    user: User


class QuotaSet(BaseModel):
    result: Literal[True]
    msg: str
    user: UserUsage


class Limits(BaseModel):
    """A domain's limits (null: unlimited) beside what it has now."""

    domain_id: int
    domain: str
    max_mailboxes: int | None
    max_aliases: int | None
    max_quota_bytes: int | None
    mailboxes: int
    aliases: int
    quota_bytes: int


class DomainLimits(BaseModel):
    result: Literal[True]
    msg: str
    limits: Limits


class UsersCreated(BaseModel):
    """A batch create: every mailbox it made, in the order given."""

    result: Literal[True]
    msg: str
    users: list[User]


class AliasList(BaseModel):
    result: Literal[True]
    aliases: list[Alias]


class AliasCreated(BaseModel):
    result: Literal[True]
    msg: str
    alias: Alias


class AliasesRemoved(AliasList):
    msg: str


class DnsRecord(BaseModel):
    name: str
    type: str
    value: str


class ReloadFailure(BaseModel):
    daemon: str
    status: str
    detail: str


class Reload(BaseModel):
    """What reconcile did on this host after the change, and what failed."""

    ok: bool
    written: list[str]
    deleted: list[str]
    reloaded: list[str]
    not_running: list[str]
    failures: list[ReloadFailure]
    error: str | None


class DkimKey(BaseModel):
    result: Literal[True]
    domain: str
    selector: str
    key_type: str
    public: str
    dns: DnsRecord


class DkimKeyAdded(DkimKey):
    msg: str
    reload: Reload
    retired_selector: str | None = None  # after a rotation: the selector it retired


class ListedDkimKey(BaseModel):
    selector: str
    key_type: str
    public: str
    dns: DnsRecord
    active: bool


class DkimKeyList(BaseModel):
    result: Literal[True]
    domain: str
    keys: list[ListedDkimKey]


class DkimKeyRemoved(BaseModel):
    result: Literal[True]
    msg: str
    domain: str
    selector: str
    was_active: bool
    reload: Reload


class CertificatePaths(BaseModel):
    certificate: str
    key: str


class Certificate(BaseModel):
    name: str
    source: str
    names: list[str]
    not_after: str
    days_left: int
    fingerprint_sha256: str
    paths: CertificatePaths


class CertificateInstalled(Certificate):
    result: Literal[True]
    msg: str
    reload: Reload


class CertificateRolledBack(Certificate):
    """503 when Postfix or Dovecot refused the new pair: the previous one is back."""

    result: Literal[False]
    msg: str
    reload: Reload


class CertificateList(BaseModel):
    result: Literal[True]
    certificates: list[Certificate]


class DaysLeft(BaseModel):
    result: Literal[True]
    hostname: str
    days_left: int
    not_after: str
    source: Literal["stored", "live"]
    name: str | None


class JobStarted(BaseModel):
    result: Literal[True]
    msg: str
    job_id: str


class Job(BaseModel):
    id: str
    kind: str
    target: str
    state: str
    message: str | None
    created_at: str
    updated_at: str


class JobState(BaseModel):
    result: Literal[True]
    job: Job


class ExportWritten(BaseModel):
    """``format=json``: the archive was written on the server, here."""

    result: Literal[True]
    file: str
    size: int
    sha256: str


class Imported(BaseModel):
    result: Literal[True]
    msg: str
    domain: str
    mailboxes: int
    aliases: int
    dkim_keys: int
    files: int


class TrashEntry(BaseModel):
    id: str
    kind: str
    target: str
    deleted_at: str | None
    has_data: bool
    mailboxes: int


class TrashList(BaseModel):
    result: Literal[True]
    trash: list[TrashEntry]


class Restored(BaseModel):
    result: Literal[True]
    msg: str
    kind: str
    target: str
    mailboxes: int
    aliases: int
    dkim_keys: int


class AuditEntry(BaseModel):
    """One change: who made it (``admin``), when (``at``, ISO 8601 in UTC), from where, to
    what, and the domain it concerns (null for admins, keys, tokens and certificates)."""

    id: int
    at: str
    admin: str
    action: str
    target: str
    domain: str | None
    client_address: str | None
    detail: str | None


class AuditList(BaseModel):
    """A page of the audit log, newest first; ``next_after`` is the ``after`` of the next
    page, null after the last."""

    result: Literal[True]
    entries: list[AuditEntry]
    next_after: int | None


class PasswordChanged(BaseModel):
    """The new password holds; every earlier token is refused, the one here is new."""

    result: Literal[True]
    msg: str
    token: str
    revoked: int


class Done(BaseModel):
    result: Literal[True]
    msg: str


class TokenInfo(BaseModel):
    """One active token: its id and where it came from, never the token itself."""

    id: str
    issued: str
    expires: str
    address: str | None
    agent: str | None
    current: bool


class TokenList(BaseModel):
    result: Literal[True]
    tokens: list[TokenInfo]


class TokensRevoked(BaseModel):
    result: Literal[True]
    msg: str
    revoked: int


class AdminInfo(BaseModel):
    """An admin as a superadmin sees it: never its password or tokens."""

    username: str
    role: Literal["superadmin", "domain_admin"]
    disabled: bool
    domains: list[str]  # the granted domains of a domain admin; empty for a superadmin
    created_at: str | None


class AdminList(BaseModel):
    result: Literal[True]
    admins: list[AdminInfo]


class AdminChanged(BaseModel):
    result: Literal[True]
    msg: str
    admin: AdminInfo


class Caller(BaseModel):
    """Who the request's token or key speaks for, and what it may touch."""

    username: str
    role: Literal["superadmin", "domain_admin"]
    domains: list[str] | None  # null: every domain
    read_only: bool
    api_key: str | None  # the key's id, when the request came with a key


class WhoAmI(BaseModel):
    result: Literal[True]
    admin: Caller


class ApiKeyInfo(BaseModel):
    """A key, never its secret."""

    id: str
    name: str
    admin: str
    domains: list[str] | None  # null: every domain its admin sees
    access: Literal["read", "write"]
    networks: list[str]
    created: str
    expires: str | None


class ApiKeyCreated(BaseModel):
    result: Literal[True]
    msg: str
    key: str  # shown this once; only a hash of it is kept
    api_key: ApiKeyInfo


class ApiKeyList(BaseModel):
    result: Literal[True]
    keys: list[ApiKeyInfo]


class ApiKeyRevoked(BaseModel):
    result: Literal[True]
    msg: str
    api_key: ApiKeyInfo


class MailboxToken(BaseModel):
    """A mailbox owner's token, for the /self operations only."""

    result: Literal[True]
    token: str


class ForwardingBody(BaseModel):
    """Where a mailbox's mail is forwarded; ``enabled`` false: nowhere."""

    enabled: bool
    destinations: list[str]
    keep_copy: bool


class AutoreplyBody(BaseModel):
    """A mailbox's auto-reply; dates are ISO 8601 days, inclusive, UTC (null: no bound)."""

    enabled: bool
    subject: str
    body: str
    start: str | None
    end: str | None


class MailboxSettings(BaseModel):
    """A mailbox with its forwarding and auto-reply."""

    result: Literal[True]
    user: User
    forwarding: ForwardingBody
    autoreply: AutoreplyBody


class MailboxSettingsChanged(MailboxSettings):
    """The settings as stored; the mailbox's Sieve script is rendered from them."""

    msg: str


class MailboxPasswordChanged(BaseModel):
    """A mailbox owner's new password is stored; earlier tokens are refused, this one works."""

    result: Literal[True]
    msg: str
    token: str
    revoked: int

"""Use cases for TLS certificates: upload, days left, ACME orders in the background, renewal.

The certificates table is the truth; reconcile renders ``<tls_dir>/<name>/fullchain.pem``
and ``privkey.pem`` from it and reloads Postfix and Dovecot. When the daemons refuse a new
pair, reconcile puts the previous files back, and these use cases put the previous pair
back in the table too, so the database never names a pair the daemons do not serve.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailctl.certs import issue_certificate, probe_certificate
from mailctl.domain import tls
from mailctl.domain.names import normalize_domain
from mailctl.errors import (
    ConflictError,
    InvalidInputError,
    MailctlError,
    NotFoundError,
    UpstreamError,
)
from mailctl.host.fs import ensure_dir, write_atomic
from mailctl.services import jobs
from mailctl.services.agent import ReconcileOutcome, reconcile_safely
from mailctl.services.context import Actor, Context
from mailctl.storage.cert_rows import undo_put
from mailctl.storage.tables import Certificate

log = logging.getLogger("mailctl.certificates")

UPLOAD, ACME = "upload", "acme"
STORED, LIVE = "stored", "live"
JOB_KIND = "acme"
CHALLENGE_DIR = Path(".well-known") / "acme-challenge"
# RFC 8555 tokens are base64url; anything else is no token of ours and never a file name.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_STORED_CHAIN_LIMIT = 4 * 1024 * 1024
RENEW_ACTOR = Actor("renewal")

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CertificateView:
    """A stored certificate as callers see it; the private key is never part of it."""

    name: str
    source: str
    names: tuple[str, ...]  # DNS names of the leaf (SAN)
    not_after: datetime
    days_left: int
    fingerprint_sha256: str
    certificate_path: Path
    key_path: Path


@dataclass(frozen=True)
class InstallResult:
    """A pair stored and rendered; ``rolled_back`` if the daemons refused it."""

    certificate: CertificateView
    reload: ReconcileOutcome
    rolled_back: bool


@dataclass(frozen=True)
class DaysLeft:
    """How long a hostname's certificate is valid, and where that was read."""

    hostname: str
    days_left: int
    not_after: datetime
    source: str  # STORED or LIVE
    name: str | None  # the stored certificate's name, for STORED


def _utc(moment: datetime) -> datetime:
    # SQLite and MariaDB hand back naive datetimes; we only ever store UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _view(ctx: Context, row: Certificate) -> CertificateView:
    info = tls.read_chain(row.chain_pem.encode("ascii"), max_bytes=_STORED_CHAIN_LIMIT)
    folder = ctx.settings.tls_path / row.name
    not_after = _utc(row.not_after)
    return CertificateView(
        name=row.name,
        source=row.source,
        names=info.san,
        not_after=not_after,
        days_left=tls.days_left(not_after),
        fingerprint_sha256=info.fingerprint_sha256,
        certificate_path=folder / "fullchain.pem",
        key_path=folder / "privkey.pem",
    )


def list_certificates(ctx: Context) -> list[CertificateView]:
    """Every stored certificate, by name."""
    with ctx.uow() as uow:
        return [_view(ctx, row) for row in uow.certificates.list()]


def _install(
    ctx: Context,
    actor: Actor,
    name: str,
    chain_pem: bytes,
    key_pem: bytes,
    not_after: datetime,
    source: str,
    action: str,
) -> InstallResult:
    """Store a checked pair, render it, and undo the store if the daemons refuse it."""
    chain_text = chain_pem.decode("ascii")
    with ctx.uow() as uow:
        current = uow.certificates.by_name(name)
        previous = (
            None
            if current is None
            else (current.chain_pem, current.key_pem, current.not_after, current.source)
        )
        row = uow.certificates.put(name, chain_text, key_pem.decode("ascii"), not_after, source)
        view = _view(ctx, row)
        uow.audit.add(
            admin=actor.name,
            action=action,
            target=name,
            client_address=actor.address,
            detail=f"sha256 {view.fingerprint_sha256}, valid until {not_after:%Y-%m-%d}",
        )
        uow.commit()
    outcome = reconcile_safely(ctx)
    rolled_back = False
    if outcome.report.failures:
        # The daemons refused the new files and reconcile put the old ones back; the table
        # follows, or the next reconcile would hand the daemons the refused pair again.
        with ctx.uow() as uow:
            if undo_put(uow.session, name, chain_text, previous):
                uow.audit.add(
                    admin=actor.name,
                    action="rollback_certificate",
                    target=name,
                    client_address=actor.address,
                    detail="the daemons refused the new pair; the previous one is back",
                )
                uow.commit()
                rolled_back = True
    return InstallResult(view, outcome, rolled_back)


def _default_name(ctx: Context, info: tls.CertInfo) -> str:
    hostname = ctx.settings.mail_hostname.strip()
    if hostname:
        name = normalize_domain(hostname)
        if not tls.matches_hostname(info, name):
            raise InvalidInputError(
                f"The certificate does not cover the mail host name {name}; give 'name' to "
                "store it under another name."
            )
        return name
    candidates = [*info.san, *([info.subject_cn] if info.subject_cn else [])]
    for candidate in candidates:
        if not candidate.startswith("*."):
            with contextlib.suppress(InvalidInputError):
                return normalize_domain(candidate)
    raise InvalidInputError(
        "The certificate names no host name mailctl can use as its name; give 'name'."
    )


def upload_certificate(
    ctx: Context,
    actor: Actor,
    certificate_pem: bytes,
    key_pem: bytes,
    *,
    name: str | None = None,
    hostname: str | None = None,
) -> InstallResult:
    """Check and install an uploaded chain and key; nothing changes if they are refused.

    The stored name is ``name`` as given; else ``hostname``, which the certificate must
    cover; else the mail host name (which it must cover too); else the certificate's
    first DNS name. After the commit, reconcile writes the files (key 0600) and reloads
    Postfix and Dovecot. If a daemon refuses them, the previous pair is back on disk and
    in the table, and ``rolled_back`` says so.
    """
    info = tls.check_upload(certificate_pem, key_pem, max_bytes=ctx.settings.max_upload_bytes)
    if name:
        chosen = normalize_domain(name)
    elif hostname:
        chosen = normalize_domain(hostname)
        if not tls.matches_hostname(info, chosen):
            raise InvalidInputError(f"The certificate does not cover the host name {chosen}.")
    else:
        chosen = _default_name(ctx, info)
    assert info.key_pem is not None  # check_upload always returns the normalised key
    return _install(
        ctx,
        actor,
        chosen,
        info.chain_pem,
        info.key_pem,
        info.not_after,
        UPLOAD,
        "upload_certificate",
    )


def _stored_for(ctx: Context, hostname: str) -> CertificateView | None:
    with ctx.uow() as uow:
        exact = uow.certificates.by_name(hostname)
        if exact is not None:
            return _view(ctx, exact)
        best: CertificateView | None = None
        for row in uow.certificates.list():
            info = tls.read_chain(row.chain_pem.encode("ascii"), max_bytes=_STORED_CHAIN_LIMIT)
            if tls.matches_hostname(info, hostname):
                view = _view(ctx, row)
                if best is None or view.not_after > best.not_after:
                    best = view
        return best


def _starttls_choice(value: str | None) -> str:
    text = (value or "auto").strip().lower()
    return {"": "auto", "true": "auto", "yes": "auto", "false": "none", "no": "none"}.get(
        text, text
    )


def days_left(
    ctx: Context,
    hostname: str,
    *,
    port: int | None = None,
    starttls: str | None = None,
    live: bool = False,
) -> DaysLeft:
    """Days until the certificate of ``hostname`` expires.

    Read from the certificate mailctl stores under that name (or whose DNS names cover
    it), unless ``live`` is set or none is stored: then from a TLS handshake with
    ``hostname:port`` (default: the configured probe port), after STARTTLS when the port
    or ``starttls`` asks for it. InvalidInputError for a malformed host, port or protocol;
    UpstreamError when the host does not resolve, refuses, does not answer or fails the
    handshake. Never a made-up number.
    """
    text = hostname.strip() if isinstance(hostname, str) else ""
    if not text:
        raise InvalidInputError("The field 'hostname' is required.")
    try:
        name: str | None = normalize_domain(text)
    except InvalidInputError:
        name = None  # an address or single-label name can still be probed live
    if name is not None and not live:
        stored = _stored_for(ctx, name)
        if stored is not None:
            return DaysLeft(name, stored.days_left, stored.not_after, STORED, stored.name)
    settings = ctx.settings
    target_port = settings.tls_probe_port if port is None else port
    try:
        probed = probe_certificate(
            name or text,
            target_port,
            starttls=_starttls_choice(starttls),
            timeout=settings.tls_probe_timeout_seconds,
        )
    except UpstreamError as exc:
        if live:
            raise
        raise UpstreamError(
            f"mailctl stores no certificate for {name or text}, and the live check failed: "
            f"{exc.message}"
        ) from exc
    return DaysLeft(name or text, probed.days_left, probed.not_after, LIVE, None)


# --- ACME ---------------------------------------------------------------------------------


def _check_token(token: str) -> str:
    if not _TOKEN.match(token):
        raise NotFoundError("There is no such ACME challenge.")
    return token


class DatabasePublisher:
    """Publishes HTTP-01 answers in the database (any replica serves them) and the webroot."""

    def __init__(self, ctx: Context, hostname: str) -> None:
        self.ctx = ctx
        self.hostname = hostname

    def _file(self, token: str) -> Path | None:
        webroot = self.ctx.settings.acme_webroot
        return None if webroot is None else webroot / CHALLENGE_DIR / token

    def publish(self, token: str, key_authorization: str) -> None:
        """Serve ``key_authorization`` for ``token`` from every replica (and the webroot)."""
        if not _TOKEN.match(token):
            raise UpstreamError("The ACME server sent a challenge token that is not base64url.")
        with self.ctx.uow() as uow:
            uow.acme_challenges.add(token, key_authorization, self.hostname)
            uow.commit()
        path = self._file(token)
        if path is not None:
            ensure_dir(path.parent, 0o755)
            write_atomic(path, key_authorization.encode("ascii"), 0o644)

    def unpublish(self, token: str) -> None:
        """Stop serving ``token``; failures are logged, never raised over the order's result."""
        try:
            with self.ctx.uow() as uow:
                uow.acme_challenges.remove(token)
                uow.commit()
        except MailctlError as exc:
            log.warning("could not remove the ACME challenge %s: %s", token, exc.message)
        path = self._file(token) if _TOKEN.match(token) else None
        if path is not None:
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                log.warning("could not remove %s: %s", path, exc.strerror or exc)


def challenge_answer(ctx: Context, token: str) -> str:
    """The key authorization published for ``token``; NotFoundError if there is none."""
    _check_token(token)
    with ctx.uow() as uow:
        row = uow.acme_challenges.get(token)
        if row is None:
            raise NotFoundError("There is no such ACME challenge.")
        return row.key_authorization


def _account_key(ctx: Context, directory_url: str) -> bytes:
    """The account key for this ACME directory, made and stored on first use."""
    with ctx.uow() as uow:
        account = uow.acme_accounts.for_directory(directory_url)
        if account is not None:
            return account.key_pem.encode("ascii")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        # Stored before the order, so an account the server registers is never lost.
        with ctx.uow() as uow:
            uow.acme_accounts.add(directory_url, pem.decode("ascii"))
            uow.commit()
    except ConflictError:
        pass  # another order stored one first; use that one
    with ctx.uow() as uow:
        account = uow.acme_accounts.for_directory(directory_url)
        if account is None:
            raise ConflictError("The ACME account key could not be stored; try again.")
        return account.key_pem.encode("ascii")


def _order(ctx: Context, actor: Actor, name: str, progress: Progress) -> str:
    """Order a certificate for ``name``, store and render it; return the outcome sentence."""
    settings = ctx.settings
    directory = settings.acme_directory_url
    issued = issue_certificate(
        name,
        directory_url=directory,
        publisher=DatabasePublisher(ctx, name),
        account_key_pem=_account_key(ctx, directory),
        email=settings.acme_email,
        ca_bundle=str(settings.acme_ca_bundle) if settings.acme_ca_bundle else None,
        timeout=settings.acme_timeout_seconds,
        progress=progress,
    )
    progress("installing certificate")
    result = _install(
        ctx,
        actor,
        name,
        issued.chain_pem,
        issued.key_pem,
        issued.not_after,
        ACME,
        "issue_certificate",
    )
    if result.rolled_back:
        raise UpstreamError(
            f"A certificate for {name} was issued, but the mail daemons refused it; the "
            "previous certificate stays in place (see the server log)."
        )
    view = result.certificate
    message = (
        f"Certificate for {name} installed; valid until {view.not_after:%Y-%m-%d} "
        f"({view.days_left} days)."
    )
    if not result.reload.ok:
        message += " It is not on this host's disk yet: " + (
            result.reload.error or "reconcile failed"
        )
    return message


def _acme_name(hostname: str) -> str:
    if not isinstance(hostname, str) or not hostname.strip():
        raise InvalidInputError("The field 'hostname' is required.")
    return normalize_domain(hostname)


def _lock_key(name: str) -> str:
    return f"{JOB_KIND}:{name}"


def _stale_after(ctx: Context) -> float:
    # An order that reports no step for this long belongs to a process that is gone: each
    # step is bounded by the ACME timeout.
    return max(600.0, 5 * ctx.settings.acme_timeout_seconds)


def start_issue(ctx: Context, actor: Actor, hostname: str) -> str:
    """Start an ACME order for ``hostname`` in the background; return its job id.

    JobBusyError (a ConflictError naming the running job) while another order for the
    same name runs anywhere; ThrottledError when too many jobs wait on this process. The
    audit log records the certificate when it is installed, not the attempt.
    """
    name = _acme_name(hostname)
    return jobs.start(
        ctx,
        JOB_KIND,
        name,
        _lock_key(name),
        _stale_after(ctx),
        lambda progress: _order(ctx, actor, name, progress),
    )


def issue_now(ctx: Context, actor: Actor, hostname: str, progress: Progress | None = None) -> str:
    """Run an ACME order for ``hostname`` in the foreground (same lock as background orders).

    Returns the outcome sentence; raises the order's error (UpstreamError, ...).
    """
    name = _acme_name(hostname)
    job_id = jobs.claim(ctx, JOB_KIND, name, _lock_key(name), _stale_after(ctx))

    def work(record: Progress) -> str:
        def both(step: str) -> None:
            record(step)
            if progress is not None:
                progress(step)

        return _order(ctx, actor, name, both)

    return jobs.execute(ctx, job_id, work)


def _renewal_of(ctx: Context, name: str) -> jobs.Work:
    def work(progress: Progress) -> str:
        return _order(ctx, RENEW_ACTOR, name, progress)

    return work


def renew_due(ctx: Context) -> list[str]:
    """Renew every ACME certificate with fewer than ``renew_before_days`` left.

    Orders run one after the other in this thread, under the same lock as other orders
    (a name whose order already runs is skipped). Returns the names renewed; failures are
    logged, and the job rows keep their messages.
    """
    moment = datetime.now(UTC) + timedelta(days=ctx.settings.renew_before_days)
    with ctx.uow() as uow:
        due = [row.name for row in uow.certificates.expiring_before(moment) if row.source == ACME]
    renewed: list[str] = []
    for name in due:
        try:
            job_id = jobs.claim(ctx, JOB_KIND, name, _lock_key(name), _stale_after(ctx))
            jobs.execute(ctx, job_id, _renewal_of(ctx, name))
        except MailctlError as exc:
            log.error("renewal of %s failed: %s", name, exc.message)
            continue
        except Exception:
            # One broken order must not keep the other names from renewing.
            log.exception("renewal of %s failed", name)
            continue
        renewed.append(name)
    return renewed

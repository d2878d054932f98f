"""ACME orders: the HTTP-01 publisher, orders in the background or foreground, and renewal."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

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
from mailctl.services.certificate_install import ACME, install_certificate
from mailctl.services.context import Actor, Context

log = logging.getLogger("mailctl.certificates")


@dataclass(frozen=True)
class Renewals:
    """One renewal pass: the certificates renewed, and why each failed one failed."""

    renewed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


JOB_KIND = "acme"
CHALLENGE_DIR = Path(".well-known") / "acme-challenge"
# RFC 8555 tokens are base64url; anything else is no token of ours and never a file name.
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
RENEW_ACTOR = Actor("renewal")

Progress = Callable[[str], None]


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
    # The ACME client is loaded by the order that needs it, not by every server process.
    from mailctl.certs.issuer import issue_certificate

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
    result = install_certificate(
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
        raise InvalidInputError("A host name is required.")
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


def renew_due(ctx: Context) -> Renewals:
    """Renew every ACME certificate with fewer than ``renew_before_days`` left.

    Orders run one after the other in this thread, under the same lock as other orders.
    Returns the names renewed and, for each failed one (a name whose order already runs
    elsewhere included), why; failures are logged too, and the job rows keep their messages.
    """
    moment = datetime.now(UTC) + timedelta(days=ctx.settings.renew_before_days)
    with ctx.uow() as uow:
        due = [row.name for row in uow.certificates.expiring_before(moment) if row.source == ACME]
    result = Renewals()
    for name in due:
        try:
            job_id = jobs.claim(ctx, JOB_KIND, name, _lock_key(name), _stale_after(ctx))
            jobs.execute(ctx, job_id, _renewal_of(ctx, name))
        except MailctlError as exc:
            log.error("renewal of %s failed: %s", name, exc.message)
            result.failed[name] = exc.message
            continue
        except Exception as exc:
            # One broken order must not keep the other names from renewing.
            log.exception("renewal of %s failed", name)
            result.failed[name] = f"unexpected error: {exc.__class__.__name__}"
            continue
        result.renewed.append(name)
    return result

"""Use cases for TLS certificates: upload, listing, and days left (stored or live)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime

from mailctl.certs import Targets, probe_certificate
from mailctl.domain import tls
from mailctl.domain.names import normalize_host_name
from mailctl.errors import InvalidInputError, UpstreamError
from mailctl.services.acme_orders import (
    DatabasePublisher,
    challenge_answer,
    issue_now,
    renew_due,
    start_issue,
)
from mailctl.services.certificate_install import (
    STORED_CHAIN_LIMIT,
    UPLOAD,
    CertificateView,
    InstallResult,
    certificate_view,
    install_certificate,
)
from mailctl.services.context import Actor, Context

# The API, the CLI and the agent's renewer reach the ACME use cases through this module too.
__all__ = [
    "LIVE",
    "STORED",
    "CertificateView",
    "DatabasePublisher",
    "DaysLeft",
    "InstallResult",
    "challenge_answer",
    "days_left",
    "issue_now",
    "list_certificates",
    "renew_due",
    "start_issue",
    "upload_certificate",
]

STORED, LIVE = "stored", "live"


@dataclass(frozen=True)
class DaysLeft:
    """How long a hostname's certificate is valid, and where that was read."""

    hostname: str
    days_left: int
    not_after: datetime
    source: str  # STORED or LIVE
    name: str | None  # the stored certificate's name, for STORED


def list_certificates(ctx: Context) -> list[CertificateView]:
    """Every stored certificate, by name."""
    with ctx.uow() as uow:
        return [certificate_view(ctx, row) for row in uow.certificates.list()]


def _default_name(ctx: Context, info: tls.CertInfo) -> str:
    hostname = ctx.settings.mail_hostname.strip()
    if hostname:
        name = normalize_host_name(hostname)
        if not tls.matches_hostname(info, name):
            raise InvalidInputError(
                f"The certificate does not cover the mail host name {name} (it is for "
                f"{_names_text(info)}); give 'name' to store it under one of its names."
            )
        return name
    for candidate in info.names:
        if not candidate.startswith("*."):
            with contextlib.suppress(InvalidInputError):
                return normalize_host_name(candidate)
    raise InvalidInputError(
        "The certificate names no host name mailctl can use as its name; give 'name'."
    )


def _names_text(info: tls.CertInfo) -> str:
    return ", ".join(info.names) or "no host name"


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

    The stored name is ``name``; else ``hostname``; else the configured mail host name;
    else the first host name the certificate is for. Whichever it is, the certificate must
    be valid for it, so an expiry check for that name reads this certificate. Valid for a
    name as a TLS client decides: its SAN DNS names, or its subject CN when it has none; a
    wildcard covers one label. After the commit, reconcile writes the files (key 0600) and
    reloads Postfix and Dovecot. If a daemon refuses them, the previous pair is back on disk
    and in the table, and ``rolled_back`` says so.
    """
    info = tls.check_upload(certificate_pem, key_pem, max_bytes=ctx.settings.max_upload_bytes)
    if name:
        chosen = normalize_host_name(name)
        if not tls.matches_hostname(info, chosen):
            raise InvalidInputError(
                f"The certificate does not cover the name {chosen} it would be stored under "
                f"(it is for {_names_text(info)}); give one of its names."
            )
    elif hostname:
        chosen = normalize_host_name(hostname)
        if not tls.matches_hostname(info, chosen):
            raise InvalidInputError(
                f"The certificate does not cover the host name {chosen} (it is for "
                f"{_names_text(info)})."
            )
    else:
        chosen = _default_name(ctx, info)
    assert info.key_pem is not None  # check_upload always returns the normalised key
    return install_certificate(
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
            return certificate_view(ctx, exact)
        best: CertificateView | None = None
        for row in uow.certificates.list():
            info = tls.read_chain(row.chain_pem.encode("ascii"), max_bytes=STORED_CHAIN_LIMIT)
            if tls.matches_hostname(info, hostname):
                view = certificate_view(ctx, row)
                if best is None or view.not_after > best.not_after:
                    best = view
        return best


def probe_targets(ctx: Context) -> Targets:
    """Where a live check may connect: public addresses, the mail host, and what is allowed."""
    every_private, networks = ctx.settings.probe_private_networks()
    return Targets(private=every_private, networks=networks, mail_host=ctx.settings.mail_hostname)


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
    or ``starttls`` asks for it: only to an address ``probe_targets`` allows.
    InvalidInputError for a malformed host, port or protocol, a refused address or a name
    that does not exist; UpstreamError when the resolver fails or no certificate could be
    read (the message does not tell a closed port from a filtered or open one). Never a
    made-up number.
    """
    text = hostname.strip() if isinstance(hostname, str) else ""
    if not text:
        raise InvalidInputError("A host name is required.")
    try:
        name: str | None = normalize_host_name(text)
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
            targets=probe_targets(ctx),
        )
    except UpstreamError as exc:
        if live:
            raise
        raise UpstreamError(
            f"mailctl stores no certificate for {name or text}, and the live check failed: "
            f"{exc.message}"
        ) from exc
    return DaysLeft(name or text, probed.days_left, probed.not_after, LIVE, None)

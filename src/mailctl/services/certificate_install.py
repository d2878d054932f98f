"""A stored certificate pair: how callers see it, and installing one the daemons may refuse."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailctl.domain import tls
from mailctl.errors import InvalidInputError
from mailctl.services.context import Actor, Context
from mailctl.services.reconcile import ReconcileOutcome
from mailctl.storage.tables import Certificate

UPLOAD, ACME = "upload", "acme"
STORED_CHAIN_LIMIT = 4 * 1024 * 1024


@dataclass(frozen=True)
class CertificateView:
    """A stored certificate as callers see it; the private key is never part of it."""

    name: str
    source: str
    names: tuple[str, ...]  # host names of the leaf: its SAN DNS names, else its CN
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


def _utc(moment: datetime) -> datetime:
    # SQLite and MariaDB hand back naive datetimes; we only ever store UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def certificate_view(ctx: Context, row: Certificate) -> CertificateView:
    """The view of a stored row, with the paths reconcile renders it to."""
    info = tls.read_chain(row.chain_pem.encode("ascii"), max_bytes=STORED_CHAIN_LIMIT)
    folder = ctx.settings.tls_path / row.name
    not_after = _utc(row.not_after)
    return CertificateView(
        name=row.name,
        source=row.source,
        names=info.names,
        not_after=not_after,
        days_left=tls.days_left(not_after),
        fingerprint_sha256=info.fingerprint_sha256,
        certificate_path=folder / "fullchain.pem",
        key_path=folder / "privkey.pem",
    )


def install_certificate(
    ctx: Context,
    actor: Actor,
    name: str,
    chain_pem: bytes,
    key_pem: bytes,
    not_after: datetime,
    source: str,
    action: str,
) -> InstallResult:
    """Store a checked pair, render it, and undo the store if the daemons refuse it.

    The certificates table is the truth; reconcile renders ``<tls_dir>/<name>/fullchain.pem``
    and ``privkey.pem`` from it and reloads Postfix and Dovecot. When the daemons refuse a
    new pair, reconcile puts the previous files back, and the previous pair goes back in
    the table too, so the database never names a pair the daemons do not serve.
    InvalidInputError, before anything changes, if the chain is not valid for ``name``:
    whatever stores a certificate, an expiry check for a name reads one that covers it.
    """
    info = tls.read_chain(chain_pem, max_bytes=STORED_CHAIN_LIMIT)
    if not tls.matches_hostname(info, name):
        raise InvalidInputError(
            f"The certificate does not cover the name {name} it would be stored under "
            f"(it is for {', '.join(info.names) or 'no host name'})."
        )
    chain_text = chain_pem.decode("ascii")
    with ctx.uow() as uow:
        current = uow.certificates.by_name(name)
        previous = (
            None
            if current is None
            else (current.chain_pem, current.key_pem, current.not_after, current.source)
        )
        row = uow.certificates.put(name, chain_text, key_pem.decode("ascii"), not_after, source)
        view = certificate_view(ctx, row)
        uow.audit.record(
            actor,
            action,
            name,
            f"sha256 {view.fingerprint_sha256}, valid until {not_after:%Y-%m-%d}",
        )
        uow.commit()
    outcome = ctx.changed("certificates")
    rolled_back = False
    if outcome.report.failures:
        # The daemons refused the new files and reconcile put the old ones back; the table
        # follows, or the next reconcile would hand the daemons the refused pair again.
        with ctx.uow() as uow:
            if uow.certificates.undo_put(name, chain_text, previous):
                uow.audit.record(
                    actor,
                    "rollback_certificate",
                    name,
                    "the daemons refused the new pair; the previous one is back",
                )
                uow.commit()
                rolled_back = True
    return InstallResult(view, outcome, rolled_back)

"""TLS certificates: upload a pair, days left for a host name, Let's Encrypt orders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from mailctl.api.bodies import (
    CertificateInstalled,
    CertificateList,
    CertificateRolledBack,
    DaysLeft,
    JobBusy,
    JobStarted,
)
from mailctl.api.deps import ActorDep, ContextDep, parsed
from mailctl.api.fields import Parse
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.api.shapes import reload_json
from mailctl.domain.numbers import ascii_int
from mailctl.errors import InvalidInputError
from mailctl.services import certificates, scope
from mailctl.services.certificates import CertificateView
from mailctl.services.jobs import JobBusyError

router = APIRouter(tags=["ssl"], route_class=JSONRoute)


@dataclass(frozen=True)
class CertificateUpload:
    """The fields of upload_certificate: the chain and key (files or text), where to store."""

    ssl_certificate: bytes
    ssl_certificate_key: bytes
    name: str | None = None
    hostname: str | None = None


def _port(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    number = ascii_int(value.strip())
    if number is None or not 1 <= number <= 65535:
        raise InvalidInputError("The field 'port' must be a number from 1 to 65535.")
    return number


@dataclass(frozen=True)
class DaysLeftQuery:
    """The fields of get_left_days."""

    hostname: str
    port: Annotated[int | None, Parse(_port, {"type": "string"})] = None
    starttls: str | None = None
    live: bool = False


@dataclass(frozen=True)
class OrderFor:
    """The fields of install_letsencrypt."""

    hostname: str


def certificate_json(view: CertificateView) -> dict[str, Any]:
    """The public facts of a stored certificate; never its private key."""
    return {
        "name": view.name,
        "source": view.source,
        "names": list(view.names),
        "not_after": view.not_after.isoformat(),
        "days_left": view.days_left,
        "fingerprint_sha256": view.fingerprint_sha256,
        "paths": {"certificate": str(view.certificate_path), "key": str(view.key_path)},
    }


@router.post(
    "/ssl/upload",
    **answers(CertificateInstalled, 400, 401, 413, (503, CertificateRolledBack)),
)
async def upload_certificate(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[CertificateUpload, Depends(parsed(CertificateUpload))],
) -> dict[str, Any] | JSONResponse:
    """Install an uploaded certificate chain and key (file or text fields).

    Stored under ``name`` if given; else ``hostname``; else the mail host name
    (``MAILCTL_MAIL_HOSTNAME``); else the host name the certificate names. The certificate
    must be valid for the name it is stored under. Valid for a name as a TLS client decides:
    the SAN's DNS names, or the subject CN when there are none; a wildcard covers one label.

    Refused with 400 (413 when too large) before anything changes: bad PEM, a key that is
    not the certificate's, an expired certificate, a chain out of order, a signature with
    SHA-1 or MD5, an RSA key under 2048 bits or a curve under 256. When Postfix or
    Dovecot refuse the new pair, the previous pair is back on disk and in the database,
    and the answer is 503 with ``result: false`` and the ``reload`` details.
    """
    scope.require_superadmin(actor, "manage the host's certificates")
    result = await run_in_threadpool(
        certificates.upload_certificate,
        ctx,
        actor,
        fields.ssl_certificate,
        fields.ssl_certificate_key,
        name=fields.name or None,
        hostname=fields.hostname or None,
    )
    view = result.certificate
    body: dict[str, Any] = {**certificate_json(view), "reload": reload_json(result.reload)}
    if result.rolled_back:
        body["msg"] = (
            f"Postfix or Dovecot refused the new certificate for {view.name}; the previous "
            "certificate was put back on disk and in the database. See reload.failures."
        )
        return JSONResponse({"result": False, **body}, status_code=503)
    body["msg"] = f"The certificate for {view.name} was installed."
    if not result.reload.ok:
        body["msg"] += " It is stored but not yet on this host's disk; see reload."
    return {"result": True, **body}


@router.get("/ssl/certificates", **answers(CertificateList, 401, 503))
def list_certificates(ctx: ContextDep, _actor: ActorDep) -> dict[str, Any]:
    """Every stored certificate with its days left."""
    scope.require_superadmin(_actor, "manage the host's certificates")
    views = certificates.list_certificates(ctx)
    return {"result": True, "certificates": [certificate_json(v) for v in views]}


@router.post(
    "/ssl/get-left-days",
    **answers(DaysLeft, 400, 401, 413, 502, 503),
)
def get_left_days(
    ctx: ContextDep,
    _actor: ActorDep,
    fields: Annotated[DaysLeftQuery, Depends(parsed(DaysLeftQuery))],
) -> dict[str, Any]:
    """Days until the host name's certificate expires: stored first, else a live check.

    ``source`` says which: ``stored`` (a certificate mailctl holds) or ``live`` (a TLS
    handshake with hostname:port; ``starttls`` auto, smtp, imap, pop3 or none). A live check
    connects only to public addresses, the mail host's own, and private ones
    ``MAILCTL_PROBE_PRIVATE_TARGETS`` allows; link-local, multicast and unspecified
    addresses never (400). A name that does not exist in DNS is a 400 too. A failing
    resolver, or a port no certificate could be read from, is a 502, never a 0; the
    message does not tell closed, filtered and open ports apart.
    """
    scope.require_superadmin(_actor, "manage the host's certificates")
    found = certificates.days_left(
        ctx,
        fields.hostname,
        port=fields.port,
        starttls=fields.starttls,
        live=fields.live,
    )
    return {
        "result": True,
        "hostname": found.hostname,
        "days_left": found.days_left,
        "not_after": found.not_after.isoformat(),
        "source": found.source,
        "name": found.name,
    }


@router.post(
    "/ssl/letsencrypt/install",
    **answers(JobStarted, 400, 401, (409, JobBusy), 413, 429, 503),
)
def install_letsencrypt(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[OrderFor, Depends(parsed(OrderFor))]
) -> dict[str, Any] | JSONResponse:
    """Start a Let's Encrypt (ACME) order for the host name; follow it at ``/jobs/<job_id>``.

    409 with the running job's ``job_id`` while another order for that name runs.
    """
    scope.require_superadmin(actor, "manage the host's certificates")
    hostname = fields.hostname
    try:
        job_id = certificates.start_issue(ctx, actor, hostname)
    except JobBusyError as exc:
        return JSONResponse(
            {"result": False, "msg": exc.message, "job_id": exc.job_id}, status_code=409
        )
    return {
        "result": True,
        "msg": f"The certificate order for {hostname.strip().lower()} started; "
        f"follow it at /jobs/{job_id}.",
        "job_id": job_id,
    }

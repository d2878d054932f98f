"""TLS certificates: upload a pair, days left for a host name, Let's Encrypt orders."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
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
from mailctl.api.deps import ActorDep, ContextDep, FieldsDep
from mailctl.api.fields import Fields
from mailctl.api.openapi import answers, form
from mailctl.api.shapes import reload_json
from mailctl.domain.numbers import ascii_int
from mailctl.errors import InvalidInputError
from mailctl.services import certificates
from mailctl.services.certificates import CertificateView
from mailctl.services.jobs import JobBusyError

router = APIRouter(tags=["ssl"])


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


async def _required_blob(fields: Fields, name: str, max_bytes: int) -> bytes:
    data = await fields.read_blob(name, max_bytes)
    if data is None or not data.strip():
        raise InvalidInputError(f"The field '{name}' is required.")
    return data


@router.post(
    "/ssl/upload",
    openapi_extra=form(
        optional=("name", "hostname"), files=("ssl_certificate", "ssl_certificate_key")
    ),
    **answers(CertificateInstalled, 400, 401, 413, (503, CertificateRolledBack)),
)
async def upload_certificate(
    ctx: ContextDep, actor: ActorDep, fields: FieldsDep
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
    limit = ctx.settings.max_upload_bytes
    chain = await _required_blob(fields, "ssl_certificate", limit)
    key = await _required_blob(fields, "ssl_certificate_key", limit)
    result = await run_in_threadpool(
        certificates.upload_certificate,
        ctx,
        actor,
        chain,
        key,
        name=fields.get("name") or None,
        hostname=fields.get("hostname") or None,
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
    views = certificates.list_certificates(ctx)
    return {"result": True, "certificates": [certificate_json(v) for v in views]}


def _port(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    number = ascii_int(value.strip())
    if number is None or not 1 <= number <= 65535:
        raise InvalidInputError("The field 'port' must be a number from 1 to 65535.")
    return number


@router.post(
    "/ssl/get-left-days",
    openapi_extra=form("hostname", optional=("port", "starttls", "live"), flags=("live",)),
    **answers(DaysLeft, 400, 401, 413, 502, 503),
)
def get_left_days(ctx: ContextDep, _actor: ActorDep, fields: FieldsDep) -> dict[str, Any]:
    """Days until the host name's certificate expires: stored first, else a live check.

    ``source`` says which: ``stored`` (a certificate mailctl holds) or ``live`` (a TLS
    handshake with hostname:port; ``starttls`` auto, smtp, imap, pop3 or none). A live check
    connects only to public addresses, the mail host's own, and private ones
    ``MAILCTL_PROBE_PRIVATE_TARGETS`` allows; link-local, multicast and unspecified
    addresses never (400). A name that does not exist in DNS is a 400 too. A failing
    resolver, or a port no certificate could be read from, is a 502, never a 0; the
    message does not tell closed, filtered and open ports apart.
    """
    found = certificates.days_left(
        ctx,
        fields.require("hostname"),
        port=_port(fields.get("port")),
        starttls=fields.get("starttls"),
        live=fields.flag("live"),
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
    openapi_extra=form("hostname"),
    **answers(JobStarted, 400, 401, (409, JobBusy), 413, 429, 503),
)
def install_letsencrypt(
    ctx: ContextDep, actor: ActorDep, fields: FieldsDep
) -> dict[str, Any] | JSONResponse:
    """Start a Let's Encrypt (ACME) order for the host name; follow it at ``/jobs/<job_id>``.

    409 with the running job's ``job_id`` while another order for that name runs.
    """
    hostname = fields.require("hostname")
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

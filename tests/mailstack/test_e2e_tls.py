"""End to end: a certificate uploaded through the API is what SMTP and IMAP serve next."""

from __future__ import annotations

import hashlib
import imaplib
import smtplib
import ssl
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from tests.mailstack.stack import HOSTNAME, MailStack, pg_server_for, self_signed_pair
from tests.mailstack.test_e2e_api import Deployment, deployed

pytestmark = [pytest.mark.mailstack, pytest.mark.slow]

SWITCH_TIMEOUT = 30.0


# The daemons read the certificate from files, not from the database, and storing a pair on
# each backend is tested in tests/api: one deployment, on SQLite, is enough (tests/README.md).
@pytest.fixture(scope="module", params=["sqlite"])
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """One deployed mail host, as `mailctl setup` configures it."""
    backend = str(request.param)
    with deployed(backend, pg_server_for(request, backend)) as found:
        yield found


@pytest.fixture(autouse=True)
def mailstack(deployment: Deployment) -> MailStack:
    """The deployment's daemons, so that a failed test reports their logs."""
    return deployment.stack


def sha256(der: bytes | None) -> str:
    """SHA-256 of a DER certificate, in hex."""
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def smtp_certificate(stack: MailStack, context: ssl.SSLContext) -> str:
    """The fingerprint of the certificate port 25 presents after STARTTLS."""
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=context)
        assert isinstance(smtp.sock, ssl.SSLSocket)
        return sha256(smtp.sock.getpeercert(binary_form=True))


def imaps_certificate(stack: MailStack, context: ssl.SSLContext) -> str:
    """The fingerprint of the certificate IMAPS presents."""
    with imaplib.IMAP4_SSL("127.0.0.1", stack.imaps_port, ssl_context=context, timeout=30) as imap:
        return sha256(imap.sock.getpeercert(binary_form=True))


def until_served(read: Callable[[], str], expected: str) -> str:
    """Read a served fingerprint until it is ``expected`` or time runs out; return the last.

    A reload lets connections in progress finish with the old certificate; new server
    processes start within moments of it.
    """
    deadline = time.monotonic() + SWITCH_TIMEOUT
    while True:
        try:
            seen = read()
        except (OSError, ssl.SSLError):
            seen = "no TLS answer"
        if seen == expected or time.monotonic() > deadline:
            return seen
        time.sleep(0.2)


def test_uploaded_certificate_is_served_by_smtp_and_imaps(
    deployment: Deployment, api: httpx.Client
) -> None:
    """POST /ssl/upload replaces the certificate; Postfix and Dovecot are reloaded and serve it."""
    stack = deployment.stack
    before = sha256(
        x509.load_pem_x509_certificate(stack.cert_pem).public_bytes(serialization.Encoding.DER)
    )
    cert_pem, key_pem = self_signed_pair(HOSTNAME)
    uploaded = sha256(
        x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    )
    assert uploaded != before
    old = ssl.create_default_context(cadata=stack.cert_pem.decode("ascii"))
    assert smtp_certificate(stack, old) == before

    response = api.post(
        "/ssl/upload",
        files={
            "ssl_certificate": ("fullchain.pem", cert_pem),
            "ssl_certificate_key": ("privkey.pem", key_pem),
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] is True
    assert sorted(body["reload"]["reloaded"]) == ["dovecot", "postfix"]

    # Trust only the new certificate from here on: a handshake proves which one is served.
    new = ssl.create_default_context(cadata=cert_pem.decode("ascii"))
    assert until_served(lambda: smtp_certificate(stack, new), uploaded) == uploaded
    assert until_served(lambda: imaps_certificate(stack, new), uploaded) == uploaded


@pytest.fixture
def api(deployment: Deployment) -> Iterator[httpx.Client]:
    """An admin's HTTP client for the deployment's API."""
    with deployment.client() as client:
        yield client

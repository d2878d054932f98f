"""End to end: auto-replies and forwarding set through the self-service API, carried out
by the real Dovecot (Pigeonhole) and Postfix that `mailctl setup` configured."""

from __future__ import annotations

import email
import email.policy
import imaplib
import smtplib
import time
from collections.abc import Iterator
from contextlib import contextmanager

import dkim
import httpx
import pytest
from tests.backends import selected_backends
from tests.mailstack.mailclient import message
from tests.mailstack.stack import MailStack, pg_server_for
from tests.mailstack.test_e2e_api import (
    Deployment,
    Mailbox,
    deployed,
    fetch,
    new_mailbox,
    tls_context,
)

pytestmark = [pytest.mark.mailstack, pytest.mark.slow]

# Per backend: Dovecot finds each mailbox and checks its password in the database, and the
# scripts come from settings stored there.

REPLY_BODY = 'I am away "until" Monday \\ back then.\n.\nA line of one dot, above.'


@pytest.fixture(scope="module", params=selected_backends())
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """One deployed mail host per database backend, shared by this module's tests."""
    backend = str(request.param)
    with deployed(backend, pg_server_for(request, backend)) as found:
        yield found


@pytest.fixture(autouse=True)
def mailstack(deployment: Deployment) -> MailStack:
    """The deployment's daemons, so that a failed test reports their logs."""
    return deployment.stack


@pytest.fixture
def api(deployment: Deployment) -> Iterator[httpx.Client]:
    """An admin's HTTP client for the deployment's API."""
    with deployment.client() as client:
        yield client


def add_mailbox(api: httpx.Client, box: Mailbox, local: str) -> Mailbox:
    """Another mailbox in ``box``'s domain, through POST /user."""
    address, password = f"{local}@{box.domain}", f"{local}'s passphrase"
    made = api.post(f"/user/{box.domain_id}", data={"email": address, "password": password})
    assert made.status_code == 200, made.text
    return Mailbox(box.domain, address, box.domain_id, made.json()["user"]["id"], password)


@contextmanager
def owner(deployment: Deployment, box: Mailbox) -> Iterator[httpx.Client]:
    """An HTTP client logged in as the owner of ``box``, at POST /self/auth."""
    with httpx.Client(base_url=deployment.api_url, timeout=60) as client:
        login = client.post("/self/auth", data={"email": box.email, "password": box.password})
        assert login.status_code == 200, login.text
        client.headers["Auth-token"] = login.json()["token"]
        yield client


def send(stack: MailStack, sender: str, recipient: str, subject: str) -> None:
    """Hand a message to port 25, from ``sender`` (the envelope too)."""
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        refused = smtp.send_message(message(sender, recipient, subject))
    assert refused == {}


def subjects(stack: MailStack, box: Mailbox) -> list[str]:
    """The subjects in ``box``'s inbox, read over IMAP."""
    with imaplib.IMAP4("127.0.0.1", stack.imap_port, timeout=30) as imap:
        imap.starttls(ssl_context=tls_context(stack))
        imap.login(box.email, box.password)
        imap.select("INBOX", readonly=True)
        status, data = imap.search(None, "ALL")
        assert status == "OK"
        found = []
        for number in data[0].split():
            status, parts = imap.fetch(number, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            assert status == "OK"
            header = parts[0][1] if isinstance(parts[0], tuple) else b""
            found.append(str(email.message_from_bytes(header)["Subject"]))
    return found


def test_auto_reply_reaches_the_sender(deployment: Deployment, api: httpx.Client) -> None:
    """Mail to a mailbox whose owner turned an auto-reply on brings the reply, with the
    owner's subject and body whole and a DKIM signature of the domain, back to the
    sender's mailbox."""
    stack = deployment.stack
    alice = new_mailbox(api)
    bob = add_mailbox(api, alice, "bob")
    added = api.post("/dkim/add-new-domain", data={"domain": alice.domain})
    assert added.status_code == 200, added.text
    record = added.json()["dns"]
    # OpenDKIM re-reads its tables in the background after a reload; a restart is done
    # loading them once it listens again.
    stack.restart_opendkim()
    with owner(deployment, bob) as client:
        on = client.post(
            "/self/autoreply",
            data={
                "subject": 'Away "for now"',
                "body": REPLY_BODY,
                "start": "2020-01-01",
                "end": "2999-12-31",
            },
        )
        assert on.status_code == 200, on.text
    send(stack, alice.email, bob.email, "are you there")
    assert b"Body of are you there." in fetch(stack, bob.email, bob.password, "are you there")
    raw = fetch(stack, alice.email, alice.password, "Away")
    reply = email.message_from_bytes(raw, policy=email.policy.default)
    assert reply["Subject"] == 'Away "for now"'
    assert reply["To"] == alice.email
    assert reply["Auto-Submitted"].startswith("auto-replied")
    text = reply.get_body(preferencelist=("plain",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n").strip() == REPLY_BODY
    assert f"d={alice.domain}" in str(reply["DKIM-Signature"])

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return record["value"].encode() if name == f"{record['name']}.".encode() else None

    assert dkim.verify(raw, dnsfunc=dns)
    # It left through Postfix's loopback listener for Sieve, not straight into the mailbox.
    assert "postfix/sieve/smtpd" in stack.cfg.postfix_log.read_text()


def test_auto_reply_outside_its_dates_stays_silent(
    deployment: Deployment, api: httpx.Client
) -> None:
    """An auto-reply whose first day is ahead sends nothing yet; mail is delivered."""
    stack = deployment.stack
    alice = new_mailbox(api)
    bob = add_mailbox(api, alice, "bob")
    later = api.post(
        "/user-autoreply",
        data={"email": bob.email, "subject": "Later", "body": "Not yet.", "start": "2999-01-01"},
    )
    assert later.status_code == 200, later.text
    send(stack, alice.email, bob.email, "too early")
    fetch(stack, bob.email, bob.password, "too early")
    send(stack, "carol@elsewhere.test", alice.email, "marker")
    fetch(stack, alice.email, alice.password, "marker")
    time.sleep(1)
    assert "Later" not in subjects(stack, alice)


def test_forwarding_with_and_without_a_copy(deployment: Deployment, api: httpx.Client) -> None:
    """Mail to a forwarding mailbox arrives at the destination; with keep_copy it stays in
    the source too, without it only the destination has it."""
    stack = deployment.stack
    alice = new_mailbox(api)
    dave = add_mailbox(api, alice, "dave")
    with owner(deployment, alice) as client:
        kept = client.post(
            "/self/forwarding", data={"destinations": dave.email, "keep_copy": "true"}
        )
        assert kept.status_code == 200, kept.text
        send(stack, "carol@elsewhere.test", alice.email, "copied along")
        assert b"Body of copied along." in fetch(stack, dave.email, dave.password, "copied along")
        assert b"Body of copied along." in fetch(stack, alice.email, alice.password, "copied along")

        moved = client.post("/self/forwarding", data={"destinations": dave.email})
        assert moved.status_code == 200, moved.text
        send(stack, "carol@elsewhere.test", alice.email, "moved along")
        assert b"Body of moved along." in fetch(stack, dave.email, dave.password, "moved along")
        assert "moved along" not in subjects(stack, alice)

        off = client.post("/self/forwarding", data={"destinations": ""})
        assert off.status_code == 200, off.text
    send(stack, "carol@elsewhere.test", alice.email, "kept home")
    fetch(stack, alice.email, alice.password, "kept home")
    assert "kept home" not in subjects(stack, dave)

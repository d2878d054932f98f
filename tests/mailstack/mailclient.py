"""Mail for a running test stack: messages to send, and reading them back over IMAP."""

from __future__ import annotations

import imaplib
import ssl
import time
from email.message import EmailMessage

import pytest
from tests.mailstack.stack import MailStack

DELIVERY_TIMEOUT = 30.0


def message(sender: str, recipient: str, subject: str) -> EmailMessage:
    """A small text message with a unique Message-ID; its body is ``Body of <subject>.``."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{subject.replace(' ', '.')}.{time.time_ns()}@mailstack.test>"
    msg.set_content(f"Body of {subject}.\n")
    return msg


def fetch(
    stack: MailStack,
    address: str,
    password: str,
    subject: str,
    *,
    starttls: ssl.SSLContext | None = None,
) -> bytes:
    """Log in over IMAP and return the raw message with ``subject``, waiting for delivery."""
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    with imaplib.IMAP4("127.0.0.1", stack.imap_port, timeout=30) as imap:
        if starttls is not None:
            imap.starttls(ssl_context=starttls)
        imap.login(address, password)
        while True:
            imap.select("INBOX")
            status, data = imap.search(None, "SUBJECT", f'"{subject}"')
            assert status == "OK"
            numbers = data[0].split()
            if numbers:
                status, parts = imap.fetch(numbers[-1], "(RFC822)")
                assert status == "OK"
                first = parts[0]
                assert isinstance(first, tuple)
                return bytes(first[1])
            if time.monotonic() > deadline:
                pytest.fail(f"{subject!r} was not delivered in time\n{stack.logs()}")
            time.sleep(0.2)

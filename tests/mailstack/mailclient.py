"""Reading mail back over IMAP from a running test stack."""

from __future__ import annotations

import imaplib
import ssl
import time

import pytest
from tests.mailstack.stack import MailStack

DELIVERY_TIMEOUT = 30.0


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

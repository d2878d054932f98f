"""Quotas enforced by the real Dovecot and Postfix from the columns mailctl keeps."""

from __future__ import annotations

import smtplib
import time
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import text
from tests.mailstack.mailclient import message

if TYPE_CHECKING:
    from tests.mailstack.stack import MailStack


pytestmark = [pytest.mark.mailstack, pytest.mark.slow]

# A test message is stored in about 900 bytes (Postfix and the milter add headers): less
# than the quota's grace of 10 %, so the one that fills the mailbox goes in, and the next
# is refused at RCPT time.
QUOTA_BYTES = 10_000
SENDS_AT_MOST = 20
USAGE_WAIT = 20.0


def usage(stack: MailStack, email: str) -> tuple[int, int] | None:
    """The (bytes, messages) row Dovecot's quota_clone wrote for ``email``, or None."""
    with stack.engine.connect() as conn:
        row = conn.execute(
            text("SELECT bytes, messages FROM mailbox_usage WHERE username = :e"), {"e": email}
        ).one_or_none()
    return None if row is None else (int(row[0]), int(row[1]))


def wait_for_usage(stack: MailStack, email: str, messages: int) -> tuple[int, int]:
    """The usage row once it counts ``messages`` messages (delivery is asynchronous)."""
    deadline = time.monotonic() + USAGE_WAIT
    found = usage(stack, email)
    while (found is None or found[1] < messages) and time.monotonic() < deadline:
        time.sleep(0.2)
        found = usage(stack, email)
    assert found is not None and found[1] >= messages, (found, stack.logs())
    return found


def fill_until_refused(stack: MailStack, email: str) -> tuple[int, bytes]:
    """Send mail to ``email`` over SMTP until RCPT is refused; (messages taken, reply)."""
    for sent in range(SENDS_AT_MOST):
        with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
            smtp.ehlo()
            mail = message("bob@elsewhere.test", email, f"filler {sent}")
            size = len(mail.as_bytes())
            code, reply = smtp.mail("bob@elsewhere.test", [f"SIZE={size}"])
            assert code == 250, reply
            code, reply = smtp.rcpt(email)
            if code != 250:
                assert code == 552, (code, reply, stack.logs())
                return sent, reply
            code, reply = smtp.data(mail.as_bytes())
            assert code == 250, reply
        # The next RCPT is only refused once this one is stored and counted.
        wait_for_usage(stack, email, sent + 1)
    pytest.fail(f"{SENDS_AT_MOST} messages went in under a {QUOTA_BYTES}-byte quota")


def test_full_mailbox_is_refused_at_rcpt_with_552(mailstack: MailStack) -> None:
    """A mailbox with a small quota takes mail until it is full; then RCPT answers 552
    (Dovecot's quota-status, asked by Postfix), and the usage is in mailbox_usage."""
    domain = mailstack.new_domain()
    email = f"full@{domain}"
    mailstack.add_user(email, mailstack.hash_password("full's secret 1"))
    mailstack.sql(
        "UPDATE virtual_users SET quota_bytes = :q WHERE email = :e", q=QUOTA_BYTES, e=email
    )
    taken, reply = fill_until_refused(mailstack, email)
    assert taken >= 2
    assert b"5.2.2" in reply
    used, messages = wait_for_usage(mailstack, email, taken)
    assert messages == taken
    assert QUOTA_BYTES <= used <= QUOTA_BYTES * 1.1


def test_message_count_limit_refuses_the_next_message(mailstack: MailStack) -> None:
    """A message count of 2: the third RCPT is refused, whatever the bytes."""
    domain = mailstack.new_domain()
    email = f"count@{domain}"
    mailstack.add_user(email, mailstack.hash_password("count's secret 1"))
    mailstack.sql("UPDATE virtual_users SET quota_messages = 2 WHERE email = :e", e=email)
    taken, _reply = fill_until_refused(mailstack, email)
    assert taken == 2
    assert wait_for_usage(mailstack, email, 2)[1] == 2


def test_a_mailbox_without_quota_takes_mail(mailstack: MailStack) -> None:
    """No quota (NULL): mail goes in and the usage is still counted."""
    domain = mailstack.new_domain()
    email = f"free@{domain}"
    mailstack.add_user(email, mailstack.hash_password("free's secret 1"))
    with smtplib.SMTP("127.0.0.1", mailstack.smtp_port, timeout=30) as smtp:
        assert smtp.send_message(message("bob@elsewhere.test", email, "no limit")) == {}
    assert wait_for_usage(mailstack, email, 1)[1] == 1

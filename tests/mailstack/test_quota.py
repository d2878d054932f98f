"""End to end: quotas set through the API, enforced by the real Dovecot and Postfix that
`mailctl setup` renders, and the usage Dovecot counts shown back by the API."""

from __future__ import annotations

import imaplib
import smtplib
import time
from collections.abc import Iterator

import httpx
import pytest
from tests.backends import selected_backends
from tests.mailstack.mailclient import message
from tests.mailstack.stack import MailStack, pg_server_for
from tests.mailstack.test_e2e_api import Deployment, Mailbox, deployed, new_mailbox, tls_context

pytestmark = [pytest.mark.mailstack, pytest.mark.slow]

# A test message is stored in about 900 bytes (Postfix and the milter add headers): less
# than the quota's grace of 10 %, so the one that fills the mailbox goes in, and the next
# is refused at RCPT time.
QUOTA_BYTES = 10_000
SENDS_AT_MOST = 20
USAGE_WAIT = 20.0


@pytest.fixture(scope="module", params=selected_backends())
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """One mail host as `mailctl setup --apply` configures it, per database backend."""
    backend = str(request.param)
    with deployed(backend, pg_server_for(request, backend)) as found:
        yield found


@pytest.fixture(autouse=True)
def mailstack(deployment: Deployment) -> MailStack:
    """The deployment's daemons, so that a failed test reports their logs."""
    return deployment.stack


@pytest.fixture
def api(deployment: Deployment) -> Iterator[httpx.Client]:
    with deployment.client() as client:
        yield client


def listed(api: httpx.Client, box: Mailbox) -> dict[str, object]:
    """The mailbox as GET /users/:domain_id lists it, quota and usage included."""
    answer = api.get(f"/users/{box.domain_id}")
    assert answer.status_code == 200, answer.text
    (found,) = [user for user in answer.json()["users"] if user["email"] == box.email]
    return dict(found)


def wait_for_usage(api: httpx.Client, box: Mailbox, messages: int) -> dict[str, object]:
    """The listing once Dovecot counted ``messages`` messages (delivery is asynchronous)."""
    deadline = time.monotonic() + USAGE_WAIT
    found = listed(api, box)
    while int(str(found["used_messages"])) < messages and time.monotonic() < deadline:
        time.sleep(0.2)
        found = listed(api, box)
    assert found["used_messages"] == messages, found
    return found


def offer(stack: MailStack, recipient: str, subject: str) -> tuple[int, bytes]:
    """Offer one message over SMTP, declaring its size; the RCPT reply (and the DATA
    one when RCPT was taken)."""
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        mail = message("bob@elsewhere.test", recipient, subject).as_bytes()
        code, reply = smtp.mail("bob@elsewhere.test", [f"SIZE={len(mail)}"])
        assert code == 250, reply
        code, reply = smtp.rcpt(recipient)
        if code != 250:
            return code, reply
        code, reply = smtp.data(mail)
        assert code == 250, reply
        return code, reply


def fill_until_refused(api: httpx.Client, stack: MailStack, box: Mailbox) -> tuple[int, bytes]:
    """Deliver to ``box`` until RCPT is refused; (messages taken, the refusal)."""
    for sent in range(SENDS_AT_MOST):
        code, reply = offer(stack, box.email, f"filler {sent}")
        if code != 250:
            assert code == 552, (code, reply, stack.logs())
            return sent, reply
        # The next RCPT is asked about only once this message is stored and counted.
        wait_for_usage(api, box, sent + 1)
    pytest.fail(f"{SENDS_AT_MOST} messages went in under a quota of {QUOTA_BYTES} bytes")


def test_a_full_mailbox_is_refused_at_rcpt_and_its_usage_shown(
    deployment: Deployment, api: httpx.Client
) -> None:
    """POST /user-quota gives a mailbox a small quota; mail goes in until it is full, then
    RCPT answers 552 (quota-status, asked by Postfix) instead of a bounce after DATA; the
    listing and IMAP's GETQUOTAROOT show what it holds. A larger quota takes mail again."""
    stack = deployment.stack
    box = new_mailbox(api)
    answer = api.post("/user-quota", data={"email": box.email, "quota": str(QUOTA_BYTES)})
    assert answer.status_code == 200, answer.text
    taken, reply = fill_until_refused(api, stack, box)
    assert taken >= 5
    assert b"5.2.2" in reply and b"Mailbox is full" in reply
    shown = wait_for_usage(api, box, taken)
    assert shown["quota_bytes"] == QUOTA_BYTES
    assert QUOTA_BYTES <= int(str(shown["used_bytes"])) <= QUOTA_BYTES * 1.1
    assert "bounced" not in (stack.root / "log" / "postfix.log").read_text()
    with imaplib.IMAP4("127.0.0.1", stack.imap_port, timeout=30) as imap:
        imap.starttls(ssl_context=tls_context(stack))
        imap.login(box.email, box.password)
        status, data = imap.getquotaroot("INBOX")
    assert status == "OK"
    # STORAGE in KiB, rounded up: what the listing says, and the quota.
    kib = -(-int(str(shown["used_bytes"])) // 1024)
    assert f"(STORAGE {kib} {-(-QUOTA_BYTES // 1024)})" in str(data)
    raised = api.post("/user-quota", data={"email": box.email, "quota": "1M"})
    assert raised.status_code == 200
    code, _ = offer(stack, box.email, "after the raise")
    assert code == 250
    wait_for_usage(api, box, taken + 1)


def test_a_message_count_refuses_the_next_message(
    deployment: Deployment, api: httpx.Client
) -> None:
    """A quota of 1M but two messages: the third RCPT is refused, whatever the bytes."""
    box = new_mailbox(api)
    answer = api.post("/user-quota", data={"email": box.email, "quota": "1M", "messages": "2"})
    assert answer.status_code == 200, answer.text
    taken, _reply = fill_until_refused(api, deployment.stack, box)
    assert taken == 2
    assert wait_for_usage(api, box, 2)["quota_messages"] == 2


def test_a_mailbox_without_quota_takes_mail_and_is_counted(
    deployment: Deployment, api: httpx.Client
) -> None:
    """No quota: mail goes in, and its usage is still counted and listed."""
    box = new_mailbox(api)
    assert offer(deployment.stack, box.email, "no limit")[0] == 250
    shown = wait_for_usage(api, box, 1)
    assert shown["quota_bytes"] is None and int(str(shown["used_bytes"])) > 0

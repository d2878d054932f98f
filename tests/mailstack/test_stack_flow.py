"""Mail flows through the real Postfix, Dovecot and OpenDKIM configured from our tables."""

from __future__ import annotations

import base64
import email
import email.policy
import hashlib
import imaplib
import os
import pwd
import smtplib
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from tests.mailstack import mailclient
from tests.mailstack.mailclient import message

if TYPE_CHECKING:
    from tests.mailstack.stack import MailStack


pytestmark = [pytest.mark.mailstack, pytest.mark.slow]

PASSWORD = "alice's long secret"
SELECTOR = "s2024"


@dataclass(frozen=True)
class Account:
    """A mailbox in a domain of its own on a running stack."""

    stack: MailStack
    domain: str
    email: str
    password: str


@pytest.fixture
def alice(mailstack: MailStack) -> Account:
    """A fresh domain with the mailbox alice@<domain> (SHA512-CRYPT, made by doveadm pw)."""
    domain = mailstack.new_domain()
    email = f"alice@{domain}"
    mailstack.add_user(email, mailstack.hash_password(PASSWORD, "SHA512-CRYPT"))
    return Account(mailstack, domain, email, PASSWORD)


def tls_context(stack: MailStack) -> ssl.SSLContext:
    """A client context that trusts only the stack's own certificate, hostname checked."""
    return ssl.create_default_context(cafile=str(stack.cert_path))


def fetch(account: Account, subject: str) -> bytes:
    """Log in over IMAP and return the raw message with ``subject``, waiting for delivery."""
    return mailclient.fetch(account.stack, account.email, account.password, subject)


def test_message_over_smtp_is_delivered_and_read_over_imap(alice: Account) -> None:
    """Mail sent to port 25 for a mailbox in the tables lands in its maildir and IMAP shows it."""
    stack = alice.stack
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        refused = smtp.send_message(message("bob@elsewhere.test", alice.email, "hello alice"))
    assert refused == {}
    raw = fetch(alice, "hello alice")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "hello alice"
    assert parsed["Delivered-To"] == alice.email
    assert b"Body of hello alice." in raw
    maildir = stack.maildir(alice.email)
    stored = list((maildir / "new").iterdir()) + list((maildir / "cur").iterdir())
    assert len(stored) == 1
    assert stored[0].stat().st_uid == stack.cfg.vmail_uid


def test_alias_row_redirects_mail(alice: Account) -> None:
    """A virtual_aliases row makes mail for the alias arrive in the destination mailbox."""
    alias = f"postmaster@{alice.domain}"
    alice.stack.add_alias(alias, alice.email)
    with smtplib.SMTP("127.0.0.1", alice.stack.smtp_port, timeout=30) as smtp:
        smtp.send_message(message("bob@elsewhere.test", alias, "for the alias"))
    raw = fetch(alice, "for the alias")
    assert b"Body of for the alias." in raw


def test_unknown_recipient_is_rejected_at_rcpt(alice: Account) -> None:
    """Mail for an address of a served domain that has no mailbox is refused with 550."""
    nobody = f"nobody@{alice.domain}"
    with smtplib.SMTP("127.0.0.1", alice.stack.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("bob@elsewhere.test")
        code, reply = smtp.rcpt(nobody)
    assert code == 550
    assert nobody.encode() in reply


def test_mail_for_a_foreign_domain_is_not_relayed(alice: Account) -> None:
    """Port 25 without authentication is no open relay: a foreign recipient is refused."""
    with smtplib.SMTP("127.0.0.1", alice.stack.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("bob@elsewhere.test")
        code, reply = smtp.rcpt("carol@faraway.test")
    assert code == 554
    assert b"Relay access denied" in reply


def test_wrong_password_is_refused_by_imap(alice: Account) -> None:
    """IMAP LOGIN with a wrong password fails with an authentication error."""
    with (
        imaplib.IMAP4("127.0.0.1", alice.stack.imap_port, timeout=30) as imap,
        pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"),
    ):
        imap.login(alice.email, "not the password")


def test_argon2_hash_logs_in_too(alice: Account) -> None:
    """An {ARGON2ID} row logs in beside {SHA512-CRYPT} rows: each row names its own scheme."""
    stack = alice.stack
    dave = f"dave@{alice.domain}"
    stack.add_user(dave, stack.hash_password("dave's passphrase", "ARGON2ID"))
    with imaplib.IMAP4("127.0.0.1", stack.imap_port, timeout=30) as imap:
        status, _ = imap.login(dave, "dave's passphrase")
    assert status == "OK"


def install_dkim_key(stack: MailStack, domain: str) -> rsa.RSAPrivateKey:
    """Write a signing key for ``domain`` and the two tables by hand, then restart OpenDKIM."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    opendkim = pwd.getpwnam(stack.cfg.opendkim_user)
    key_file = stack.root / "opendkim" / "keys" / f"{domain}.{SELECTOR}.private"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    # OpenDKIM reads keys after switching to its own user; nobody else may read them.
    os.chown(key_file, opendkim.pw_uid, opendkim.pw_gid)
    key_file.chmod(0o600)
    key_name = f"{SELECTOR}._domainkey.{domain}"
    stack.cfg.opendkim_key_table.write_text(f"{key_name} {domain}:{SELECTOR}:{key_file}\n")
    stack.cfg.opendkim_signing_table.write_text(f"*@{domain} {key_name}\n")
    stack.restart_opendkim()
    return key


def test_submission_signs_with_dkim(alice: Account) -> None:
    """Authenticated submission over STARTTLS is signed by OpenDKIM and the signature verifies."""
    stack = alice.stack
    key = install_dkim_key(stack, alice.domain)
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public_der)
    asked: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        asked.append(name)
        return record if name == f"{SELECTOR}._domainkey.{alice.domain}.".encode() else None

    with smtplib.SMTP("127.0.0.1", stack.submission_port, timeout=30) as smtp:
        smtp.starttls(context=tls_context(stack))
        smtp.login(alice.email, alice.password)
        smtp.send_message(message(alice.email, alice.email, "signed note"))
    raw = fetch(alice, "signed note")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    signature = str(parsed["DKIM-Signature"])
    assert f"d={alice.domain}" in signature
    assert f"s={SELECTOR}" in signature
    assert dkim.verify(raw, dnsfunc=dns)
    assert asked == [f"{SELECTOR}._domainkey.{alice.domain}.".encode()]


def test_submission_refuses_auth_before_starttls(alice: Account) -> None:
    """The submission port does not offer AUTH, nor take mail, until the session is encrypted."""
    with smtplib.SMTP("127.0.0.1", alice.stack.submission_port, timeout=30) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")
        code, _ = smtp.docmd(f"MAIL FROM:<{alice.email}>")
    assert code == 530


def test_submission_refuses_a_wrong_password(alice: Account) -> None:
    """SMTP AUTH on submission with a wrong password is refused with 535."""
    stack = alice.stack
    with smtplib.SMTP("127.0.0.1", stack.submission_port, timeout=30) as smtp:
        smtp.starttls(context=tls_context(stack))
        smtp.ehlo()
        # One PLAIN attempt: login() would try every mechanism, each with a failure delay.
        smtp.user, smtp.password = alice.email, "not the password"
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.auth("PLAIN", smtp.auth_plain)
    assert refused.value.smtp_code == 535


def fingerprint(der: bytes | None) -> str:
    """SHA-256 of a DER certificate, in hex."""
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def test_starttls_and_imaps_present_the_configured_certificate(mailstack: MailStack) -> None:
    """SMTP STARTTLS, IMAP STARTTLS and IMAPS all serve the certificate from the config."""
    context = tls_context(mailstack)
    with smtplib.SMTP("127.0.0.1", mailstack.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=context)
        assert isinstance(smtp.sock, ssl.SSLSocket)
        smtp_cert = smtp.sock.getpeercert(binary_form=True)
    with imaplib.IMAP4_SSL(
        "127.0.0.1", mailstack.imaps_port, ssl_context=context, timeout=30
    ) as imap:
        imaps_cert = imap.sock.getpeercert(binary_form=True)
    with imaplib.IMAP4("127.0.0.1", mailstack.imap_port, timeout=30) as imap:
        imap.starttls(ssl_context=context)
        assert isinstance(imap.sock, ssl.SSLSocket)
        imap_cert = imap.sock.getpeercert(binary_form=True)
    assert fingerprint(smtp_cert) == mailstack.cert_sha256
    assert fingerprint(imaps_cert) == mailstack.cert_sha256
    assert fingerprint(imap_cert) == mailstack.cert_sha256


def _subjects(account: Account) -> list[str]:
    """The subjects in the account's maildir (new and cur), read from the files."""
    maildir = account.stack.maildir(account.email)
    found = []
    for path in [*(maildir / "new").iterdir(), *(maildir / "cur").iterdir()]:
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        found.append(str(parsed["Subject"]))
    return sorted(found)


def test_catch_all_takes_unknown_addresses_but_not_a_mailbox(alice: Account) -> None:
    """With @domain aliased to alice, bob keeps his own mail; a copy alias adds alice too."""
    stack = alice.stack
    bob = Account(stack, alice.domain, f"bob@{alice.domain}", PASSWORD)
    stack.add_user(bob.email, stack.hash_password(PASSWORD, "SHA512-CRYPT"))
    stack.add_alias(f"@{alice.domain}", alice.email)
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        smtp.send_message(message("carol@elsewhere.test", bob.email, "for bob only"))
        smtp.send_message(message("carol@elsewhere.test", f"nobody@{alice.domain}", "stray"))
    assert b"Body of for bob only." in fetch(bob, "for bob only")
    assert b"Body of stray." in fetch(alice, "stray")
    assert _subjects(alice) == ["stray"]

    stack.add_alias(bob.email, alice.email)
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        smtp.send_message(message("carol@elsewhere.test", bob.email, "copied"))
    assert b"Body of copied." in fetch(bob, "copied")
    assert b"Body of copied." in fetch(alice, "copied")

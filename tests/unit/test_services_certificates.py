"""Certificate services: upload and rollback, days left, HTTP-01 publishing, jobs, renewal."""

from __future__ import annotations

import logging
import os
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.pki import ca_signed, self_signed

from mailctl.errors import InvalidInputError, NotFoundError, ThrottledError, UpstreamError
from mailctl.services import certificates, dkim, domains, jobs
from mailctl.services.context import Actor, Context
from mailctl.services.job_runner import JobRunner
from mailctl.services.reconcile import reconcile
from mailctl.storage.tables import Job

ACTOR = Actor("admin", "192.0.2.1")


@dataclass
class Pair:
    """A server certificate chain (leaf, then its CA) and the leaf's key, as PEM."""

    chain: bytes
    key: bytes
    not_after: datetime


def make_pair(
    *names: str, days: float = 60, ca_key: ec.EllipticCurvePrivateKey | None = None
) -> Pair:
    """Issue a leaf for ``names`` (SAN; the first is the CN) from a fresh test CA."""
    return Pair(*ca_signed(*names, days=days, ca_key=ca_key))


def _files(ctx: Context, name: str) -> tuple[Path, Path]:
    folder = ctx.settings.tls_path / name
    return folder / "fullchain.pem", folder / "privkey.pem"


def _leaf_pem(chain: bytes) -> bytes:
    return x509.load_pem_x509_certificates(chain)[0].public_bytes(serialization.Encoding.PEM)


def _fail_postfix_reload(ctx: Context) -> None:
    ctx.settings.reload_enabled = True
    ctx.settings.reload_postfix = "false"
    ctx.settings.reload_dovecot = "true"
    ctx.settings.reload_opendkim = "true"  # never the machine's own daemon


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- upload ---------------------------------------------------------------------------


def test_upload_stores_renders_and_audits(ctx: Context) -> None:
    """An upload is stored, rendered (key 0600) and recorded in the audit log."""
    pair = make_pair("mail.example.com", "smtp.example.com")
    result = certificates.upload_certificate(ctx, ACTOR, pair.chain, pair.key)
    view = result.certificate
    assert view.name == "mail.example.com"
    assert view.source == "upload"
    assert view.names == ("mail.example.com", "smtp.example.com")
    assert view.not_after == pair.not_after
    assert view.days_left == 59
    assert result.reload.ok and not result.rolled_back
    chain_file, key_file = _files(ctx, "mail.example.com")
    assert chain_file.read_bytes() == pair.chain
    assert key_file.stat().st_mode & 0o777 == 0o600
    with ctx.uow() as uow:
        actions = [(e.action, e.target) for e in uow.audit.recent()]
    assert ("upload_certificate", "mail.example.com") in actions


def test_upload_name_defaults_to_mail_hostname_when_covered(ctx: Context) -> None:
    """With a mail host name configured, an upload covering it is stored under that name."""
    ctx.settings.mail_hostname = "mx.example.com"
    pair = make_pair("www.example.com", "mx.example.com")
    result = certificates.upload_certificate(ctx, ACTOR, pair.chain, pair.key)
    assert result.certificate.name == "mx.example.com"


def test_upload_not_covering_mail_hostname_is_refused(ctx: Context) -> None:
    """An upload that does not cover the configured mail host name needs an explicit name."""
    ctx.settings.mail_hostname = "mx.example.com"
    pair = make_pair("www.example.com")
    with pytest.raises(InvalidInputError, match=r"does not cover the mail host name"):
        certificates.upload_certificate(ctx, ACTOR, pair.chain, pair.key)
    named = certificates.upload_certificate(
        ctx, ACTOR, pair.chain, pair.key, name="www.example.com"
    )
    assert named.certificate.name == "www.example.com"


def test_cn_only_certificate_for_the_mail_hostname_is_stored_under_it(ctx: Context) -> None:
    """A certificate naming the mail host only in its CN (no SAN) is accepted for it."""
    ctx.settings.mail_hostname = "mx.example.com"
    cert, key = self_signed("mx.example.com", san=False)
    result = certificates.upload_certificate(ctx, ACTOR, cert, key)
    assert result.certificate.name == "mx.example.com"
    assert result.certificate.names == ("mx.example.com",)
    assert _files(ctx, "mx.example.com")[0].read_bytes() == cert


def test_cn_only_localhost_certificate_without_mail_hostname(ctx: Context) -> None:
    """With no mail host name set, a CN-only certificate for localhost is stored as localhost."""
    cert, key = self_signed("localhost", san=False)
    result = certificates.upload_certificate(ctx, ACTOR, cert, key)
    assert result.certificate.name == "localhost"
    found = certificates.days_left(ctx, "localhost")
    assert (found.source, found.name) == ("stored", "localhost")


def test_mail_hostname_localhost_takes_a_localhost_certificate(ctx: Context) -> None:
    """A single-label mail host name (localhost) is a valid name to store a certificate under."""
    ctx.settings.mail_hostname = "localhost"
    cert, key = self_signed("localhost", san=False)
    assert certificates.upload_certificate(ctx, ACTOR, cert, key).certificate.name == "localhost"


def test_refusal_for_the_mail_hostname_lists_the_certificates_names(ctx: Context) -> None:
    """A certificate not for the mail host name is refused, with the names it is for."""
    ctx.settings.mail_hostname = "mx.example.com"
    pair = make_pair("www.example.com")
    with pytest.raises(InvalidInputError) as refused:
        certificates.upload_certificate(ctx, ACTOR, pair.chain, pair.key)
    assert refused.value.message == (
        "The certificate does not cover the mail host name mx.example.com (it is for "
        "www.example.com); give 'name' to store it under one of its names."
    )


def test_upload_hostname_must_be_covered(ctx: Context) -> None:
    """A hostname given with an upload must be one of the certificate's names."""
    pair = make_pair("mail.example.com")
    with pytest.raises(InvalidInputError, match=r"does not cover the host name other\.example"):
        certificates.upload_certificate(ctx, ACTOR, pair.chain, pair.key, hostname="other.example")


def test_refused_upload_changes_nothing(ctx: Context) -> None:
    """A key that is not the certificate's is refused; the installed pair stays as it was."""
    first = make_pair("mail.example.com")
    certificates.upload_certificate(ctx, ACTOR, first.chain, first.key)
    other = make_pair("mail.example.com")
    with pytest.raises(InvalidInputError, match="does not match"):
        certificates.upload_certificate(ctx, ACTOR, other.chain, first.key)
    chain_file, key_file = _files(ctx, "mail.example.com")
    assert chain_file.read_bytes() == first.chain
    assert key_file.read_bytes() == first.key
    [view] = certificates.list_certificates(ctx)
    assert view.not_after == first.not_after


def test_reload_refusal_restores_previous_pair_in_files_and_database(ctx: Context) -> None:
    """When a daemon refuses the new pair, files and table both hold the previous pair again."""
    first = make_pair("mail.example.com", days=30)
    certificates.upload_certificate(ctx, ACTOR, first.chain, first.key)
    _fail_postfix_reload(ctx)
    second = make_pair("mail.example.com", days=90)
    result = certificates.upload_certificate(ctx, ACTOR, second.chain, second.key)
    assert result.rolled_back
    assert [f.daemon for f in result.reload.report.failures] == ["postfix"]
    chain_file, key_file = _files(ctx, "mail.example.com")
    assert chain_file.read_bytes() == first.chain
    assert key_file.read_bytes() == first.key
    with ctx.uow() as uow:
        row = uow.certificates.by_name("mail.example.com")
        assert row is not None
        assert (row.chain_pem.encode(), row.key_pem.encode()) == (first.chain, first.key)
        assert row.source == "upload"
        actions = [e.action for e in uow.audit.recent()]
    assert "rollback_certificate" in actions
    # A later reconcile has nothing to redo: the table and the files agree.
    ctx.settings.reload_postfix = "true"
    assert not reconcile(ctx).changed


def test_reload_refusal_of_a_first_certificate_leaves_none(ctx: Context) -> None:
    """A first certificate the daemons refuse is neither on disk nor in the table."""
    _fail_postfix_reload(ctx)
    pair = make_pair("mail.example.com")
    result = certificates.upload_certificate(ctx, ACTOR, pair.chain, pair.key)
    assert result.rolled_back
    assert not _files(ctx, "mail.example.com")[0].exists()
    assert certificates.list_certificates(ctx) == []


# --- files reconcile writes ------------------------------------------------------------

OPENDKIM_UID, OPENDKIM_GID = 4242, 4243  # stand-ins for the opendkim user and group


def _owner_mode(path: Path) -> tuple[int, int, int]:
    info = path.stat()
    return info.st_uid, info.st_gid, info.st_mode & 0o777


def test_reconcile_gives_tls_keys_to_root_and_dkim_keys_to_opendkim(ctx: Context) -> None:
    """TLS key 0600 root:root, chain 0644 root; DKIM key 0600 and tables owned by OpenDKIM."""
    assert os.geteuid() == 0, "changing a file's owner needs root, as scripts/test runs"
    ctx.settings.file_uid, ctx.settings.file_gid = OPENDKIM_UID, OPENDKIM_GID
    domains.create_domain(ctx, ACTOR, "example.com")
    dkim.add_key(ctx, ACTOR, "example.com", key_type="ed25519")
    pair = make_pair("mail.example.com")
    certificates.upload_certificate(ctx, ACTOR, pair.chain, pair.key)
    chain_file, key_file = _files(ctx, "mail.example.com")
    assert _owner_mode(key_file) == (0, 0, 0o600)
    assert _owner_mode(chain_file) == (0, 0, 0o644)
    opendkim_dir = ctx.settings.opendkim_path
    dkim_key = opendkim_dir / "keys" / "example.com" / "mail.private"
    assert _owner_mode(dkim_key) == (OPENDKIM_UID, OPENDKIM_GID, 0o600)
    assert _owner_mode(opendkim_dir / "KeyTable") == (OPENDKIM_UID, OPENDKIM_GID, 0o644)


def test_reconcile_takes_back_a_tls_key_the_opendkim_group_could_read(ctx: Context) -> None:
    """A TLS key left group-readable by the OpenDKIM group is put back to 0600 root:root."""
    assert os.geteuid() == 0, "changing a file's owner needs root, as scripts/test runs"
    ctx.settings.file_uid, ctx.settings.file_gid = OPENDKIM_UID, OPENDKIM_GID
    pair = make_pair("mail.example.com")
    certificates.upload_certificate(ctx, ACTOR, pair.chain, pair.key)
    _, key_file = _files(ctx, "mail.example.com")
    os.chown(key_file, OPENDKIM_UID, OPENDKIM_GID)
    os.chmod(key_file, 0o640)
    report = reconcile(ctx)
    assert report.written == [str(key_file)]
    assert _owner_mode(key_file) == (0, 0, 0o600)
    assert key_file.read_bytes() == pair.key


# --- days left ------------------------------------------------------------------------


def test_days_left_from_a_stored_certificate_covering_the_name(ctx: Context) -> None:
    """A host name covered by a stored certificate's wildcard is answered from storage."""
    pair = make_pair("example.org", "*.example.org", days=45.5)
    certificates.upload_certificate(ctx, ACTOR, pair.chain, pair.key)
    found = certificates.days_left(ctx, "IMAP.Example.org")
    assert (found.source, found.name, found.days_left) == ("stored", "example.org", 45)
    assert found.not_after == pair.not_after


def test_days_left_refused_live_check_is_an_error_not_zero(ctx: Context) -> None:
    """No stored certificate and a refused port: an UpstreamError that says both."""
    ctx.settings.probe_private_targets = "127.0.0.1"
    with pytest.raises(UpstreamError, match=r"stores no certificate.*Could not read a cert"):
        certificates.days_left(ctx, "127.0.0.1", port=_closed_port())


@pytest.mark.parametrize("hostname", ["", "   ", "bad host", "a..b"])
def test_days_left_bad_hostname_is_invalid(ctx: Context, hostname: str) -> None:
    """Malformed host names are refused before any connection is tried."""
    with pytest.raises(InvalidInputError):
        certificates.days_left(ctx, hostname)


# --- HTTP-01 publishing ------------------------------------------------------------------


def test_publisher_serves_from_database_and_webroot(ctx: Context, tmp_path: Path) -> None:
    """A published answer is in the database and the webroot, and is gone after unpublish."""
    ctx.settings.acme_webroot = tmp_path / "www"
    publisher = certificates.DatabasePublisher(ctx, "mail.example.com")
    publisher.publish("tok_EN-1", "tok_EN-1.thumb")
    assert certificates.challenge_answer(ctx, "tok_EN-1") == "tok_EN-1.thumb"
    answer_file = tmp_path / "www" / ".well-known" / "acme-challenge" / "tok_EN-1"
    assert answer_file.read_text() == "tok_EN-1.thumb"
    publisher.unpublish("tok_EN-1")
    assert not answer_file.exists()
    with pytest.raises(NotFoundError):
        certificates.challenge_answer(ctx, "tok_EN-1")


@pytest.mark.parametrize("token", ["../etc", "a/b", "a.b", "", "x" * 256])
def test_publisher_refuses_tokens_that_are_not_base64url(
    ctx: Context, tmp_path: Path, token: str
) -> None:
    """A token with path characters is never written anywhere, nor looked up."""
    ctx.settings.acme_webroot = tmp_path / "www"
    with pytest.raises(UpstreamError, match="base64url"):
        certificates.DatabasePublisher(ctx, "mail.example.com").publish(token, "x")
    assert not (tmp_path / "www").exists()
    with pytest.raises(NotFoundError):
        certificates.challenge_answer(ctx, token)


# --- jobs --------------------------------------------------------------------------------


def test_second_claim_of_a_lock_names_the_running_job(ctx: Context) -> None:
    """While a job holds a lock, another claim fails with that job's id; after it, it works."""
    first = jobs.claim(ctx, "acme", "mail.example.com", "acme:mail.example.com", 600)
    with pytest.raises(jobs.JobBusyError) as busy:
        jobs.claim(ctx, "acme", "mail.example.com", "acme:mail.example.com", 600)
    assert busy.value.job_id == first
    assert first in busy.value.message
    jobs.finish(ctx, first, True, "done")
    second = jobs.claim(ctx, "acme", "mail.example.com", "acme:mail.example.com", 600)
    assert second != first
    assert jobs.get_job(ctx, first).state == "succeeded"


def test_a_stale_lock_is_released_and_its_job_failed(ctx: Context) -> None:
    """A job that stopped reporting long ago no longer blocks its target."""
    first = jobs.claim(ctx, "acme", "mail.example.com", "acme:mail.example.com", 600)
    with ctx.uow() as uow:
        row = uow.session.get(Job, first)
        assert row is not None
        row.updated_at = datetime.now(UTC) - timedelta(hours=2)
        uow.commit()
    second = jobs.claim(ctx, "acme", "mail.example.com", "acme:mail.example.com", 600)
    assert second != first
    old = jobs.get_job(ctx, first)
    assert old.state == "failed"
    assert old.message is not None and "Abandoned" in old.message


def test_background_job_reports_progress_and_outcome(ctx: Context) -> None:
    """The runner records each step, then the end state, and releases the lock."""
    gate = threading.Event()
    seen: list[str | None] = []

    def work(progress: jobs.Progress) -> str:
        progress("step one")
        seen.append(jobs.get_job(ctx, job_id).message)
        assert gate.wait(10)
        return "all done"

    job_id = jobs.start(ctx, "test", "t.example", "test:t", 600, work)
    assert jobs.get_job(ctx, job_id).state in ("pending", "running")
    gate.set()
    assert ctx.job_runner.wait(10)
    done = jobs.get_job(ctx, job_id)
    assert (done.state, done.message) == ("succeeded", "all done")
    assert seen == ["step one"]
    with ctx.uow() as uow:
        assert uow.jobs.running_for("test:t") is None


def test_background_job_failure_keeps_the_message(ctx: Context) -> None:
    """A job whose work raises ends failed with the error's message, lock released."""

    def work(progress: jobs.Progress) -> str:
        raise UpstreamError("The ACME server said no.")

    job_id = jobs.start(ctx, "test", "t.example", "test:t", 600, work)
    assert ctx.job_runner.wait(10)
    done = jobs.get_job(ctx, job_id)
    assert (done.state, done.message) == ("failed", "The ACME server said no.")
    with ctx.uow() as uow:
        assert uow.jobs.running_for("test:t") is None


def test_full_queue_is_throttled_and_claims_nothing(ctx: Context) -> None:
    """A full runner refuses with 429 before any job row is made."""
    runner = JobRunner(workers=1, queued=1)
    runner.reserve()
    with pytest.raises(ThrottledError):
        runner.reserve()
    runner.release()
    runner.reserve()  # the slot given back can be taken again
    runner.release()


def test_unknown_job_is_not_found(ctx: Context) -> None:
    """Asking for a job that does not exist is a NotFoundError."""
    with pytest.raises(NotFoundError):
        jobs.get_job(ctx, "0e6b3c2e-0000-4000-8000-000000000000")
    with pytest.raises(NotFoundError):
        jobs.get_job(ctx, "x" * 100)


# --- ACME orders without a server ------------------------------------------------------------


def test_bad_hostname_starts_no_order(ctx: Context) -> None:
    """An order for a malformed name is refused and leaves no job behind."""
    for hostname in ("", "not a host", "-x.example.com", "*.example.com", "10.0.0.1"):
        with pytest.raises(InvalidInputError):
            certificates.start_issue(ctx, ACTOR, hostname)
    with ctx.uow() as uow:
        assert uow.session.query(Job).count() == 0


def test_renew_due_logs_failures_and_skips_uploads(
    ctx: Context, caplog: pytest.LogCaptureFixture
) -> None:
    """Due ACME certificates are ordered; a failing order is logged, uploads are left alone."""
    ctx.settings.acme_directory_url = f"https://127.0.0.1:{_closed_port()}/dir"
    ctx.settings.acme_timeout_seconds = 5
    acme = make_pair("acme.example.com", days=3)
    uploaded = make_pair("upload.example.com", days=3)
    fresh = make_pair("fresh.example.com", days=80)
    with ctx.uow() as uow:
        uow.certificates.put(
            "acme.example.com", acme.chain.decode(), acme.key.decode(), acme.not_after, "acme"
        )
        uow.certificates.put(
            "upload.example.com",
            uploaded.chain.decode(),
            uploaded.key.decode(),
            uploaded.not_after,
            "upload",
        )
        uow.certificates.put(
            "fresh.example.com", fresh.chain.decode(), fresh.key.decode(), fresh.not_after, "acme"
        )
        uow.commit()
    with caplog.at_level(logging.ERROR, logger="mailctl.certificates"):
        renewals = certificates.renew_due(ctx)
    assert renewals.renewed == []
    assert list(renewals.failed) == ["acme.example.com"]
    assert "renewal of acme.example.com failed" in caplog.text
    with ctx.uow() as uow:
        rows = uow.session.query(Job).all()
        assert [(j.target, j.state, j.lock_key) for j in rows] == [
            ("acme.example.com", "failed", None)
        ]
        assert "connection was refused" in (rows[0].message or "")
        # The account key was kept for the next attempt.
        assert uow.acme_accounts.for_directory(ctx.settings.acme_directory_url) is not None


@pytest.mark.security(
    finding=11,
    claim="Every path that stores a certificate (upload, ACME) refuses a name it does not cover.",
)
def test_install_refuses_a_chain_that_does_not_cover_its_name(ctx: Context) -> None:
    """The one store step (used by uploads and ACME orders) checks the name; nothing stored."""
    from mailctl.services.certificate_install import UPLOAD, install_certificate

    pair = make_pair("mail.example.com")
    with pytest.raises(InvalidInputError, match=r"does not cover the name www\.example\.com"):
        install_certificate(
            ctx, ACTOR, "www.example.com", pair.chain, pair.key, pair.not_after, UPLOAD, "test"
        )
    assert certificates.list_certificates(ctx) == []
    with pytest.raises(InvalidInputError, match=r"does not cover the name web\.example"):
        certificates.upload_certificate(ctx, ACTOR, pair.chain, pair.key, name="web.example")
    assert certificates.list_certificates(ctx) == []

"""End to end: the stack `mailctl setup` renders, run for real, driven through the HTTP API."""

from __future__ import annotations

import email
import email.policy
import imaplib
import io
import pwd
import shlex
import shutil
import smtplib
import ssl
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dkim
import httpx
import pytest
from sqlalchemy import create_engine
from tests.backends import selected_backends
from tests.liveserver import live_api
from tests.mailstack import mailclient
from tests.mailstack.mailclient import message
from tests.mailstack.stack import (
    BINARIES,
    HOSTNAME,
    MailStack,
    free_port,
    mail_database,
    pg_server_for,
    self_signed_pair,
    start_stack,
    stop_stack,
    vmail_ids,
)

from mailctl.config import Settings
from mailctl.host.stack import DOVECOT, OPENDKIM, POSTFIX, stack_commands
from mailctl.services import auth, certificates, setup
from mailctl.services.context import Actor, Context
from mailctl.storage.database import Database

pytestmark = [pytest.mark.mailstack, pytest.mark.slow]

ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery"
SERVER_START_TIMEOUT = 10.0
_domains = iter(range(1, 1_000_000))


def migrate(url: str, _backend: str) -> None:
    """Make the schema with mailctl's own Alembic migrations, as `mailctl init` does."""
    database = Database(url)
    try:
        database.upgrade()
    finally:
        database.dispose()


@dataclass
class Deployment:
    """A mail host as `mailctl setup` configures it, with its API live on 127.0.0.1."""

    stack: MailStack
    settings: Settings
    api_url: str
    result: setup.SetupResult

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """An HTTP client logged in as the admin, sending the documented Auth-token header."""
        with httpx.Client(base_url=self.api_url, timeout=60) as client:
            response = client.post(
                "/auth", files={"username": (None, ADMIN), "password": (None, ADMIN_PASSWORD)}
            )
            assert response.status_code == 200, response.text
            client.headers["Auth-token"] = response.json()["token"]
            yield client


def require_tools() -> None:
    """Fail, never skip, when a daemon the end-to-end tests need is not installed."""
    missing = [binary for binary in BINARIES if shutil.which(binary) is None]
    if missing:
        pytest.fail(
            f"not installed: {', '.join(missing)}; scripts/install-test-packages installs them"
        )


def setup_options(root: Path) -> setup.SetupOptions:
    """What an operator would pass to `mailctl setup --root ROOT --smtp-port ...`."""
    return setup.SetupOptions(
        root=root,
        listen_address="127.0.0.1",
        smtp_port=free_port(),
        submission_port=free_port(),
        imap_port=free_port(),
        imaps_port=free_port(),
        milter_port=free_port(),
        reinject_port=free_port(),
        # The root is below /tmp, which anyone may write to: OpenDKIM's ancestor check
        # would refuse every key. Keys stay 0600 and owned by opendkim.
        opendkim_require_safe_keys=False,
    )


@contextmanager
def deployed(backend: str, pg_server: str | None = None) -> Iterator[Deployment]:
    """Run `mailctl init`, a certificate upload and `mailctl setup --apply` in a temporary
    root, start the three daemons from what setup wrote, and serve the API beside them.

    mailctl and the daemons each log in with their own role and password.
    """
    require_tools()
    uid, gid = vmail_ids()
    opendkim = pwd.getpwnam("opendkim")
    root = Path(tempfile.mkdtemp(prefix="mailctl-e2e-"))
    root.chmod(0o711)
    try:
        with mail_database(backend, root, migrate, pg_server) as database:
            url = database.url
            settings = Settings(
                data_dir=root / "data",
                database_url=url,
                daemon_database_url="" if backend == "sqlite" else database.daemon_url,
                mail_root=root / "mail",
                opendkim_dir=root / "opendkim",
                tls_dir=root / "tls",
                # Read by the vmail account at delivery: outside the private data folder.
                sieve_dir=root / "sieve",
                mail_hostname=HOSTNAME,
                mail_uid=uid,
                mail_gid=gid,
                # OpenDKIM reads its keys after dropping to its own user.
                file_uid=opendkim.pw_uid,
                file_gid=opendkim.pw_gid,
                admin_username=ADMIN,
            )
            plan = setup.plan_setup(settings, setup_options(root))
            ctx = Context.from_settings(settings)
            try:
                auth.initialize(ctx, ADMIN, ADMIN_PASSWORD)
                cert_pem, key_pem = self_signed_pair(HOSTNAME)
                certificates.upload_certificate(ctx, Actor("e2e"), cert_pem, key_pem)
                result = setup.apply_setup(plan, ctx)
            finally:
                ctx.close()
            engine = create_engine(url)
            stack = MailStack(
                backend, url, root, plan.cfg, cert_pem, engine, root / "log" / "opendkim.out"
            )
            try:
                start_stack(stack)
                yield from _serve(stack, settings, result)
            finally:
                problems = stop_stack(stack)
                engine.dispose()
                if problems:
                    pytest.fail("\n".join(problems) + "\n" + stack.logs())
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _serve(stack: MailStack, settings: Settings, result: setup.SetupResult) -> Iterator[Deployment]:
    commands = stack_commands(stack.cfg)
    # A mail host's settings: reloads on, with the commands of this very stack.
    live_settings = settings.model_copy(
        update={
            "reload_enabled": True,
            "reload_postfix": shlex.join(commands[POSTFIX]["reload"]),
            "reload_dovecot": shlex.join(commands[DOVECOT]["reload"]),
            "reload_opendkim": shlex.join(commands[OPENDKIM]["reload"]),
        }
    )
    ctx = Context.from_settings(live_settings)
    try:
        with live_api(ctx) as url:
            yield Deployment(stack, live_settings, url, result)
    finally:
        ctx.close()


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


# --- mail helpers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Mailbox:
    """A mailbox made through the API: its domain, address, ids and current password."""

    domain: str
    email: str
    domain_id: int
    user_id: int
    password: str


def new_mailbox(api: httpx.Client) -> Mailbox:
    """Create a fresh domain with the mailbox alice@ through POST /domains."""
    domain = f"e2e{next(_domains)}.example.test"
    address = f"alice@{domain}"
    password = "alice's first passphrase"
    response = api.post(
        "/domains",
        files={
            "domain": (None, domain),
            "username": (None, address),
            "password": (None, password),
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return Mailbox(domain, address, body["domain"]["id"], body["user"]["id"], password)


def deliver(stack: MailStack, recipient: str, subject: str) -> None:
    """Hand a message from outside to port 25, as another mail server would."""
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        refused = smtp.send_message(message("bob@elsewhere.test", recipient, subject))
    assert refused == {}


def fetch(stack: MailStack, address: str, password: str, subject: str) -> bytes:
    """Log in over IMAP (after STARTTLS) and return the raw message with ``subject``."""
    return mailclient.fetch(stack, address, password, subject, starttls=tls_context(stack))


def imap_login_refused(stack: MailStack, address: str, password: str) -> bool:
    """True when IMAP answers the login with an authentication failure."""
    with imaplib.IMAP4("127.0.0.1", stack.imap_port, timeout=30) as imap:
        imap.starttls(ssl_context=tls_context(stack))
        try:
            imap.login(address, password)
        except imaplib.IMAP4.error as exc:
            assert "AUTHENTICATIONFAILED" in str(exc)
            return True
    return False


def rcpt(stack: MailStack, recipient: str) -> tuple[int, bytes]:
    """Offer ``recipient`` on port 25 and return the server's answer to RCPT TO."""
    with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as smtp:
        smtp.ehlo()
        smtp.mail("bob@elsewhere.test")
        return smtp.rcpt(recipient)


def tls_context(stack: MailStack) -> ssl.SSLContext:
    """A client context that trusts only the certificate the stack serves, hostname checked."""
    return ssl.create_default_context(cadata=stack.cert_pem.decode("ascii"))


# --- the tests ------------------------------------------------------------------------------


def test_setup_wrote_what_the_daemons_run(deployment: Deployment) -> None:
    """`setup --apply` wrote every file, each daemon accepted it, none was running yet."""
    result = deployment.result
    cfg = deployment.stack.cfg
    assert cfg.postfix_main_cf in result.written
    assert cfg.dovecot_conf in result.written
    assert cfg.opendkim_conf in result.written
    assert {check.daemon: check.status for check in result.checks} == {
        POSTFIX: "passed",
        DOVECOT: "passed",
        OPENDKIM: "passed",
    }
    assert {reload.status for reload in result.reloads} == {"not running"}
    assert cfg.tls_cert == deployment.settings.tls_path / HOSTNAME / "fullchain.pem"
    assert cfg.opendkim_key_table == deployment.settings.opendkim_path / "KeyTable"


def test_mailbox_made_through_the_api_receives_mail(
    deployment: Deployment, api: httpx.Client
) -> None:
    """A mailbox created over HTTP gets mail over SMTP, readable over IMAP with its password;
    a password change over HTTP takes effect at once; the export holds the message.
    """
    stack = deployment.stack
    box = new_mailbox(api)
    maildir = stack.maildir(box.email)
    assert maildir.is_dir()
    assert maildir.stat().st_uid == stack.cfg.vmail_uid

    deliver(stack, box.email, "hello alice")
    raw = fetch(stack, box.email, box.password, "hello alice")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == "hello alice"
    assert parsed["Delivered-To"] == box.email
    stored = [*(maildir / "new").iterdir(), *(maildir / "cur").iterdir()]
    assert [path.stat().st_uid for path in stored] == [stack.cfg.vmail_uid]

    new_password = "alice's second passphrase"
    changed = api.post(
        "/user-change-password",
        files={
            "id": (None, str(box.user_id)),
            "password": (None, new_password),
            "domain_id": (None, str(box.domain_id)),
        },
    )
    assert changed.status_code == 200, changed.text
    assert imap_login_refused(stack, box.email, box.password)
    assert b"Body of hello alice." in fetch(stack, box.email, new_password, "hello alice")

    exported = api.request("GET", "/export/domain", files={"domain": (None, box.domain)})
    assert exported.status_code == 200, exported.text
    with tarfile.open(fileobj=io.BytesIO(exported.content), mode="r:gz") as archive:
        contents = [
            extracted.read()
            for member in archive.getmembers()
            if member.isfile() and (extracted := archive.extractfile(member)) is not None
        ]
    assert any(b"Subject: hello alice" in content for content in contents)


def test_alias_made_through_the_api_delivers_and_stops_when_removed(
    deployment: Deployment, api: httpx.Client
) -> None:
    """POST /alias makes Postfix deliver mail for the alias; DELETE /aliases undoes it."""
    stack = deployment.stack
    box = new_mailbox(api)
    alias = f"postmaster@{box.domain}"
    assert rcpt(stack, alias)[0] == 550
    created = api.post(
        f"/alias/{box.domain_id}",
        files={"source": (None, "postmaster"), "destination": (None, box.email)},
    )
    assert created.status_code == 200, created.text
    assert created.json()["alias"]["source"] == alias
    deliver(stack, alias, "for the postmaster")
    raw = fetch(stack, box.email, box.password, "for the postmaster")
    assert b"Body of for the postmaster." in raw

    removed = api.request("DELETE", "/aliases", files={"source": (None, alias)})
    assert removed.status_code == 200, removed.text
    assert rcpt(stack, alias)[0] == 550


def test_dkim_key_from_the_api_signs_submitted_mail(
    deployment: Deployment, api: httpx.Client
) -> None:
    """POST /dkim/add-new-domain renders a key OpenDKIM signs with; the signature verifies
    against the DNS value the API returned.
    """
    stack = deployment.stack
    box = new_mailbox(api)
    added = api.post("/dkim/add-new-domain", files={"domain": (None, box.domain)})
    assert added.status_code == 200, added.text
    body = added.json()
    assert body["reload"]["reloaded"] == [OPENDKIM]
    record = body["dns"]
    assert record["type"] == "TXT"
    # OpenDKIM re-reads its tables in the background after a reload; a restart is done
    # loading them once it listens again.
    stack.restart_opendkim()
    asked: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        asked.append(name)
        return record["value"].encode() if name == f"{record['name']}.".encode() else None

    with smtplib.SMTP("127.0.0.1", stack.submission_port, timeout=30) as smtp:
        smtp.starttls(context=tls_context(stack))
        smtp.login(box.email, box.password)
        smtp.send_message(message(box.email, box.email, "signed note"))
    raw = fetch(stack, box.email, box.password, "signed note")
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    signature = str(parsed["DKIM-Signature"])
    assert f"d={box.domain}" in signature
    assert f"s={body['selector']}" in signature
    assert dkim.verify(raw, dnsfunc=dns)
    assert asked == [f"{record['name']}.".encode()]


def test_deleted_domain_stops_mail_and_comes_back_from_the_trash(
    deployment: Deployment, api: httpx.Client
) -> None:
    """After DELETE /users and DELETE /domain, IMAP and SMTP refuse the mailbox; restoring
    both from the trash brings the login and the message back.
    """
    stack = deployment.stack
    box = new_mailbox(api)
    deliver(stack, box.email, "before the delete")
    fetch(stack, box.email, box.password, "before the delete")

    gone_user = api.request("DELETE", "/users", files={"email": (None, box.email)})
    assert gone_user.status_code == 200, gone_user.text
    assert imap_login_refused(stack, box.email, box.password)
    code, reply = rcpt(stack, box.email)
    assert (code, b"User unknown" in reply) == (550, True)

    gone_domain = api.request("DELETE", "/domain", files={"domain": (None, box.domain)})
    assert gone_domain.status_code == 200, gone_domain.text
    # The domain is no longer served. smtpd remembers its last address lookup, so the
    # address it just called unknown may be refused as unknown once more; any other
    # address of the domain is refused as relaying.
    code, reply = rcpt(stack, box.email)
    assert code in (550, 554), reply
    code, reply = rcpt(stack, f"postmaster@{box.domain}")
    assert (code, b"Relay access denied" in reply) == (554, True)

    listed = api.get("/trash")
    assert listed.status_code == 200, listed.text
    entries = {(item["kind"], item["target"]): item for item in listed.json()["trash"]}
    assert ("mailbox", box.email) in entries
    assert ("domain", box.domain) in entries

    # The domain first, then its mailbox: a mailbox can only come back into a domain.
    for key in (("domain", box.domain), ("mailbox", box.email)):
        restored = api.post("/trash/restore", files={"id": (None, entries[key]["id"])})
        assert restored.status_code == 200, restored.text
    raw = fetch(stack, box.email, box.password, "before the delete")
    assert b"Body of before the delete." in raw

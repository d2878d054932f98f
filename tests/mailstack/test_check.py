"""`mailctl check` on a host `mailctl setup` configured: healthy, then broken five ways."""

from __future__ import annotations

import dataclasses
import json
import os
import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from tests.backends import selected_backends
from tests.mailstack.mailclient import message
from tests.mailstack.stack import (
    MailStack,
    _wait_for_ports,
    pg_server_for,
    run_to_file,
    self_signed_pair,
    write_rendered,
)
from tests.mailstack.test_e2e_api import Deployment, Mailbox, deployed, new_mailbox, tls_context
from typer.testing import CliRunner

from mailctl.cli.main import app
from mailctl.host.stack import DOVECOT, OPENDKIM, POSTFIX, stack_commands
from mailctl.services import certificates, setup
from mailctl.services.context import Actor, Context

pytestmark = [pytest.mark.mailstack, pytest.mark.slow]

# A check that fails on a file, a daemon or a certificate fails the same whichever database
# the host's rows are in: such a test runs on the SQLite host only (tests/README.md).
ONCE_ON_SQLITE = pytest.mark.parametrize("host", ["sqlite"], indirect=True)

CHECK_NAMES = {
    "database",
    "config.files",
    "postfix.running",
    "dovecot.running",
    "opendkim.running",
    "postfix.map.domains",
    "postfix.map.mailboxes",
    "postfix.map.aliases",
    "dovecot.userdb",
    "dovecot.passdb",
    "opendkim.files",
    "tls.files",
    "tls.certificate",
    "tls.smtp",
    "tls.submission",
    "tls.imaps",
}
SETTLE_TIMEOUT = 20.0


@dataclasses.dataclass
class Host:
    """The deployment, a mailbox with an alias and a DKIM key, and a way to run mailctl."""

    deployment: Deployment
    box: Mailbox
    env: dict[str, str | None]

    @property
    def stack(self) -> MailStack:
        return self.deployment.stack

    def mailctl(self, *args: str, **extra: str | None) -> Result:
        """Run the CLI with this host's settings (and no MAILCTL_RELOAD_* of the tests)."""
        return CliRunner().invoke(
            app, list(args), env={**self.env, **extra}, catch_exceptions=False
        )

    def check(self) -> Result:
        return self.mailctl("check")

    def check_until(self, wanted: str) -> Result:
        """Run check until ``wanted`` is in its output (a reload settles in the background)."""
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            done = self.check()
            if wanted in done.output or time.monotonic() > deadline:
                return done
            time.sleep(0.5)


def cli_env(deployment: Deployment) -> dict[str, str | None]:
    """The deployment's settings as the environment of a `mailctl` command on the host."""
    settings = deployment.settings
    env: dict[str, str | None] = {
        "MAILCTL_DATA_DIR": str(settings.data_dir),
        "MAILCTL_DATABASE_URL": settings.database_url,
        "MAILCTL_DAEMON_DATABASE_URL": settings.daemon_database_url or None,
        "MAILCTL_MAIL_ROOT": str(settings.mail_root_path),
        "MAILCTL_OPENDKIM_DIR": str(settings.opendkim_path),
        "MAILCTL_TLS_DIR": str(settings.tls_path),
        "MAILCTL_SIEVE_DIR": str(settings.sieve_path),
        "MAILCTL_MAIL_HOSTNAME": settings.mail_hostname,
        "MAILCTL_MAIL_UID": str(settings.mail_uid),
        "MAILCTL_MAIL_GID": str(settings.mail_gid),
        "MAILCTL_FILE_UID": str(settings.file_uid),
        "MAILCTL_FILE_GID": str(settings.file_gid),
        # A SQLite file stays 0640 with Postfix's group, so its maps can read it; Dovecot's
        # auth worker reads it as root.
        "MAILCTL_DATABASE_GROUP": "postfix",
    }
    for daemon in ("POSTFIX", "DOVECOT", "OPENDKIM"):
        env[f"MAILCTL_RELOAD_{daemon}"] = None
    return env


@pytest.fixture(scope="module", params=selected_backends())
def host(request: pytest.FixtureRequest) -> Iterator[Host]:
    """A deployed mail host per backend with a mailbox, an alias and a DKIM key in it."""
    backend = str(request.param)
    with (
        deployed(backend, pg_server_for(request, backend)) as deployment,
        deployment.client() as api,
    ):
        box = new_mailbox(api)
        alias = api.post(
            f"/alias/{box.domain_id}",
            files={"source": (None, "postmaster"), "destination": (None, box.email)},
        )
        assert alias.status_code == 200, alias.text
        added = api.post("/dkim/add-new-domain", files={"domain": (None, box.domain)})
        assert added.status_code == 200, added.text
        yield Host(deployment, box, cli_env(deployment))


@pytest.fixture(autouse=True)
def mailstack(host: Host) -> MailStack:
    """The host's daemons, so that a failed test reports their logs."""
    return host.stack


def start(stack: MailStack, daemon: str, port: int) -> None:
    status = run_to_file(stack_commands(stack.cfg)[daemon]["start"], stack.root / "log" / "start")
    assert status == 0, stack.logs()
    _wait_for_ports(stack, {daemon: port})


def test_healthy_host_passes(host: Host) -> None:
    """On the host setup configured, every check passes on real rows, with --json too."""
    done = host.check()
    assert done.exit_code == 0, done.output
    box = host.box
    assert "ok   postfix.map.domains: " in done.output
    assert f"finds {box.domain} (as the postfix user)" in done.output
    assert f"finds {box.email} (as the postfix user)" in done.output
    assert f"finds postmaster@{box.domain} (as the postfix user)" in done.output
    assert f"ok   dovecot.passdb: Dovecot resolves {box.email}." in done.output
    assert f"ok   opendkim.key.{box.domain}: " in done.output
    assert "RequireSafeKeys is off" in done.output
    assert f"serves the certificate of {host.stack.hostname}" in done.output

    shown = host.mailctl("check", "--json")
    assert shown.exit_code == 0, shown.output
    body = json.loads(shown.output)
    assert body["ok"] is True
    names = {check["name"] for check in body["checks"]}
    assert names == CHECK_NAMES | {f"opendkim.key.{box.domain}"}
    for check in body["checks"]:
        assert set(check) == {"name", "status", "detail", "fix"}
        assert check["status"] == "ok", check


def test_wrong_database_credentials_in_the_daemons_files(host: Host) -> None:
    """Maps and Dovecot's SQL file that cannot log in fail both lookups, naming the fix."""
    stack = host.stack
    backend = stack.cfg.backend
    if backend.kind == "sqlite":
        broken = dataclasses.replace(backend, database=str(stack.root / "nowhere" / "mail.db"))
    elif backend.kind == "postgresql":
        # The test server trusts every local login, so a wrong password would pass: a
        # user that does not exist is refused all the same.
        broken = dataclasses.replace(backend, user="mailctl_nobody", password="wrong")
    else:
        broken = dataclasses.replace(backend, password="wrong-password")
    write_rendered(dataclasses.replace(stack.cfg, backend=broken))
    assert stack.command(DOVECOT, "reload").returncode == 0
    try:
        done = host.check_until("fail dovecot.passdb")
        assert done.exit_code == 8, done.output
        for name in ("domains", "mailboxes", "aliases"):
            assert f"fail postfix.map.{name}: The lookup of " in done.output
        assert "fix: Postfix cannot query the database with what" in done.output
        assert f"fail dovecot.passdb: Dovecot's lookup of {host.box.email} failed" in done.output
        assert "fix: Dovecot cannot query the database" in done.output
        assert "1 check" not in done.output  # several failed, and the count says so
    finally:
        write_rendered(stack.cfg)
        assert stack.command(DOVECOT, "reload").returncode == 0
    assert host.check_until("ok   dovecot.passdb").exit_code == 0


@ONCE_ON_SQLITE
def test_unreadable_map_file(host: Host) -> None:
    """A map file only root may read fails its lookup as the postfix user."""
    path = host.stack.cfg.map_file("aliases")
    path.chmod(0o600)
    try:
        done = host.check()
        assert done.exit_code == 8, done.output
        assert "fail postfix.map.aliases: " in done.output
        assert "Permission denied" in done.output
        assert "ok   postfix.map.domains" in done.output
        assert f"fail config.files: {path} has mode 0600, not 0640." in done.output
    finally:
        path.chmod(0o640)
    assert host.check().exit_code == 0


@ONCE_ON_SQLITE
def test_stopped_daemon(host: Host) -> None:
    """A stopped OpenDKIM is named with the command that starts it."""
    stack = host.stack
    assert stack.command(OPENDKIM, "stop").returncode == 0
    try:
        done = host.check()
        assert done.exit_code == 8, done.output
        assert "fail opendkim.running: opendkim is not running" in done.output
        assert f"fix: Start it: `opendkim -x {stack.cfg.opendkim_conf}`." in done.output
        assert "ok   postfix.running" in done.output
    finally:
        start(stack, OPENDKIM, stack.cfg.milter_port)
    assert host.check().exit_code == 0


@ONCE_ON_SQLITE
def test_served_certificate_differs_from_the_stored_one(host: Host) -> None:
    """A new certificate stored and rendered, but not reloaded, is not what IMAPS serves;
    after the reload the check passes again.
    """
    stack = host.stack
    settings = host.deployment.settings.model_copy(update={"reload_enabled": False})
    ctx = Context.from_settings(settings)
    try:
        cert, key = self_signed_pair(stack.hostname)
        certificates.upload_certificate(ctx, Actor("test"), cert, key)
    finally:
        ctx.close()
    done = host.check()
    assert done.exit_code == 8, done.output
    assert "fail tls.imaps: " in done.output
    assert "serves another certificate" in done.output
    assert "fix: Run `mailctl reconcile`, then reload dovecot: `dovecot -c" in done.output
    stack.cert_pem = cert
    assert stack.command(POSTFIX, "reload").returncode == 0
    assert stack.command(DOVECOT, "reload").returncode == 0
    assert host.check_until("ok   tls.imaps").exit_code == 0


@ONCE_ON_SQLITE
def test_dkim_key_below_a_world_writable_folder(host: Host) -> None:
    """With RequireSafeKeys on, OpenDKIM answers 451 for a key below /tmp, and both setup
    and check name the folder; back off, the check passes.
    """
    stack, box = host.stack, host.box
    settings = host.deployment.settings
    recorded = setup.recorded_options(settings)
    assert recorded is not None and recorded.opendkim_require_safe_keys is False
    strict = dataclasses.replace(recorded, opendkim_require_safe_keys=True)
    ctx = Context.from_settings(settings)
    try:
        result = setup.apply_setup(setup.plan_setup(settings, strict), ctx)
        assert not result.ok
        failed = {check.name: check for check in result.health.failures}
        assert list(failed) == [f"opendkim.key.{box.domain}"]
        stack.restart_opendkim()
        with smtplib.SMTP("127.0.0.1", stack.submission_port, timeout=30) as smtp:
            smtp.starttls(context=tls_context(stack))
            smtp.login(box.email, box.password)
            with pytest.raises(smtplib.SMTPDataError) as refused:
                smtp.send_message(message(box.email, box.email, "never signed"))
        assert refused.value.smtp_code == 451

        done = host.check()
        assert done.exit_code == 8, done.output
        line = " ".join(done.output.split())
        assert f"fail opendkim.key.{box.domain}: OpenDKIM refuses" in line
        assert "/tmp can be written by any user" in line
        assert "fix: Keep the keys below folders only root or opendkim may write to" in line
    finally:
        assert setup.apply_setup(setup.plan_setup(settings, recorded), ctx).ok
        ctx.close()
        stack.restart_opendkim()
    assert host.check().exit_code == 0


@ONCE_ON_SQLITE
def test_dkim_add_reloads_the_opendkim_setup_configured(host: Host, tmp_path: Path) -> None:
    """With reloads on and no MAILCTL_RELOAD_*, `mailctl dkim add` reloads the OpenDKIM of
    the layout setup recorded (never the system's service) and the key stays in place.
    """
    # The system's service commands, should anything call them, fail instead of
    # starting this machine's own daemons.
    guard = tmp_path / "bin"
    guard.mkdir()
    for name in ("service", "systemctl"):
        (guard / name).write_text('#!/bin/sh\necho "system $0 called" >&2\nexit 1\n')
        (guard / name).chmod(0o755)
    stack = host.stack
    domain = f"reload-{os.getpid()}.example.test"
    assert host.mailctl("domain", "add", domain).exit_code == 0
    path = f"{guard}:{os.environ['PATH']}"
    added = host.mailctl("dkim", "add", domain, MAILCTL_RELOAD_ENABLED="true", PATH=path)
    assert added.exit_code == 0, added.output
    assert "reloaded opendkim" in added.output
    key = host.deployment.settings.opendkim_path / "keys" / domain / "mail.private"
    assert key.is_file()
    assert f"{domain}:mail:{key}" in (stack.cfg.opendkim_key_table).read_text()
    assert host.check_until(f"ok   opendkim.key.{domain}").exit_code == 0

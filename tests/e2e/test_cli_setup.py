"""The setup and dns commands: what they print, write, refuse, and their exit codes."""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
from pathlib import Path

import pytest
from click.testing import Result
from tests.mailstack.stack import BINARIES, self_signed_pair
from typer.testing import CliRunner

from mailctl.cli.main import app

# The commands are thin; one backend is enough to check their output and exit codes.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

HOST = "mail.example.com"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    """Settings of a mail host whose every path lies below the test's folder."""
    return {
        "MAILCTL_DATA_DIR": str(tmp_path / "data"),
        "MAILCTL_DATABASE_URL": database_url,
        "MAILCTL_ADMIN_PASSWORD": "admin-password-1",
        "MAILCTL_MAIL_HOSTNAME": HOST,
        "MAILCTL_MAIL_UID": "5000",
        "MAILCTL_MAIL_GID": "5000",
    }


@pytest.fixture
def run(env: dict[str, str]):  # type: ignore[no-untyped-def]
    """Invoke mailctl with the test's settings (plus ``extra``) after `mailctl init`."""
    runner = CliRunner()

    def invoke(*args: str, extra: dict[str, str | None] | None = None) -> Result:
        return runner.invoke(app, list(args), env={**env, **(extra or {})}, catch_exceptions=False)

    assert invoke("init").exit_code == 0
    return invoke


# Reload commands unset, so setup and reconcile choose those of the layout they render.
LAYOUT_RELOADS: dict[str, str | None] = {
    f"MAILCTL_RELOAD_{daemon}": None for daemon in ("POSTFIX", "DOVECOT", "OPENDKIM")
}


def mail_host_env(root: Path) -> dict[str, str | None]:
    """A SQLite database and data folder below ``root`` that Postfix and Dovecot can read."""
    (root / "db").mkdir(mode=0o755)
    return {
        "MAILCTL_DATA_DIR": str(root / "data"),
        "MAILCTL_DATABASE_URL": f"sqlite:///{root / 'db' / 'mailctl.db'}",
        # The file is 0640 with this group, so Postfix's maps can read it (the only daemon
        # these tests ask; a mail host names a group Dovecot is in as well).
        "MAILCTL_DATABASE_GROUP": "postfix",
        **LAYOUT_RELOADS,
    }


def upload_certificate(run, folder: Path, extra: dict[str, str | None]) -> None:  # type: ignore[no-untyped-def]
    """Store a self-signed certificate for the mail host name."""
    cert, key = self_signed_pair(HOST)
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    uploaded = run("cert", "upload", str(folder / "cert.pem"), str(folder / "key.pem"), extra=extra)
    assert uploaded.exit_code == 0, uploaded.output


def ports() -> list[str]:
    """High ports, so a rendered configuration never names the system's own."""
    return [
        *("--smtp-port", "2525", "--submission-port", "2587"),
        *("--imap-port", "2143", "--imaps-port", "2993", "--milter-port", "2891"),
    ]


def test_dry_run_prints_every_file_with_the_password_masked(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The default dry run shows each file under its path, hides the database password,
    and writes nothing.
    """
    url = "postgresql+psycopg://mailctl:own-pw@db.internal/mailctl"
    daemons = "postgresql+psycopg://daemons:pw-never-shown@db.internal/mailctl"
    extra = {"MAILCTL_DATABASE_URL": url, "MAILCTL_DAEMON_DATABASE_URL": daemons}
    shown = run("setup", "--root", str(tmp_path / "stack"), extra=extra)
    assert shown.exit_code == 0, shown.output
    for name in ("postfix/etc/main.cf", "postfix/etc/sql-virtual-mailboxes.cf"):
        assert str(tmp_path / "stack" / name) in shown.output
    assert "dovecot-sql.conf.ext" in shown.output
    assert "opendkim.conf" in shown.output
    assert "hosts = postgresql://daemons:********@db.internal:5432/mailctl" in shown.output
    assert "password='********'" in shown.output
    assert "pw-never-shown" not in shown.output
    assert "own-pw" not in shown.output
    assert "Dry run: nothing was written." in shown.output
    assert not (tmp_path / "stack").exists()


def test_dry_run_defaults_to_debian_paths_and_standard_ports(run) -> None:  # type: ignore[no-untyped-def]
    """Without --root the files go where Debian's daemons look, listening on every address."""
    shown = run("setup", "--dry-run")
    assert shown.exit_code == 0, shown.output
    assert "/etc/postfix/main.cf" in shown.output
    assert "/etc/dovecot/dovecot.conf" in shown.output
    assert "/etc/opendkim.conf" in shown.output
    assert "inet_interfaces = all" in shown.output
    assert "\n25 inet n - n - - smtpd" in shown.output
    assert "\n587 inet n - n - - smtpd" in shown.output
    assert "Socket inet:8891@127.0.0.1" in shown.output


def test_backend_that_disagrees_with_the_url_is_refused(run) -> None:  # type: ignore[no-untyped-def]
    """--backend mariadb against a SQLite URL exits 2 and names both."""
    refused = run("setup", "--backend", "mariadb")
    assert refused.exit_code == 2
    assert "--backend mariadb does not match the database URL, which is sqlite" in refused.output


def test_systemd_units_need_apply(run) -> None:  # type: ignore[no-untyped-def]
    """--systemd without --apply is refused: a dry run writes nothing."""
    refused = run("setup", "--systemd")
    assert refused.exit_code == 2
    assert "--systemd writes units, so it needs --apply." in refused.output


def test_apply_without_a_certificate_writes_nothing(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With no certificate for the mail host, apply says how to get one and exits 8."""
    refused = run("setup", "--apply", "--root", str(tmp_path / "stack"), *ports())
    assert refused.exit_code == 8
    assert f"There is no certificate for {HOST}" in refused.output
    assert "mailctl cert upload" in refused.output
    assert not (tmp_path / "stack" / "postfix" / "etc" / "main.cf").exists()


def test_apply_writes_checks_and_reports_daemons_not_running(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, host_root: Path
) -> None:
    """--apply writes the files with their modes and groups, each daemon's own check passes,
    Postfix's maps answer as the postfix user, the daemons that do not run are named, the
    layout's reload commands are shown, and the systemd units read the env file.
    """
    missing = [binary for binary in BINARIES if shutil.which(binary) is None]
    assert not missing, f"not installed: {missing}; scripts/install-test-packages installs them"
    assert os.geteuid() == 0, "setup --apply hands folders to the daemons' users: run as root"
    extra = mail_host_env(host_root)
    assert run("init", extra=extra).exit_code == 0
    upload_certificate(run, tmp_path, extra)
    stack, units = host_root / "stack", tmp_path / "units"
    args = ["setup", "--apply", "--root", str(stack), "--listen", "127.0.0.1", *ports()]

    applied = run(*args, "--systemd", "--systemd-dir", str(units), extra=extra)
    assert applied.exit_code == 0, applied.output
    for daemon in ("postfix", "dovecot", "opendkim"):
        assert f"check   {daemon}: passed" in applied.output
        assert f"reload  {daemon}: not running" in applied.output
        assert f"skip {daemon}.running: {daemon} is not running" in applied.output
    for name in ("domains", "mailboxes", "aliases"):
        assert f"ok   postfix.map.{name}: sqlite:{stack}/postfix/etc/" in applied.output
    assert f"reload with postfix: postfix -c {stack}/postfix/etc reload" in applied.output
    assert f"--pidfile {stack}/opendkim/run/opendkim.pid" in applied.output
    assert "which may reload another" not in applied.output
    assert f"recorded {host_root}/data/stack.json" in applied.output
    assert (host_root / "data" / "stack.json").stat().st_mode & 0o777 == 0o600
    assert "systemctl enable --now mailctl mailctl-agent" in applied.output
    main_cf = stack / "postfix" / "etc" / "main.cf"
    assert f"wrote   {main_cf}" in applied.output
    assert f"myhostname = {HOST}" in main_cf.read_text()
    tls = host_root / "data" / "tls" / HOST
    assert f"smtpd_tls_chain_files = {tls}/privkey.pem {tls}/fullchain.pem" in main_cf.read_text()
    mailboxes = stack / "postfix" / "etc" / "sql-virtual-mailboxes.cf"
    assert mailboxes.stat().st_mode & 0o777 == 0o640
    assert grp.getgrgid(mailboxes.stat().st_gid).gr_name == "postfix"
    data_dir = stack / "postfix" / "lib"
    assert pwd.getpwuid(data_dir.stat().st_uid).pw_name == "postfix"
    assert (host_root / "data" / "opendkim" / "KeyTable").is_file()
    service = (units / "mailctl.service").read_text()
    assert "EnvironmentFile=/etc/mailctl/env" in service
    assert service.splitlines()[-1] == "WantedBy=multi-user.target"
    assert " serve\n" in service
    assert " agent\n" in (units / "mailctl-agent.service").read_text()

    again = run(*args, extra=extra)
    assert again.exit_code == 0, again.output
    assert "wrote" not in again.output
    assert "files were up to date." in again.output
    assert "reload  postfix: unchanged" in again.output


def test_dns_prints_the_four_records(run) -> None:  # type: ignore[no-untyped-def]
    """`mailctl dns` lists MX, SPF, DKIM and DMARC; --zone prints them as zone-file lines."""
    assert run("domain", "add", "example.org").exit_code == 0
    added = run("dkim", "add", "example.org", "--key-type", "ed25519")
    assert added.exit_code == 0, added.output
    value = next(
        line.split("value: ", 1)[1] for line in added.output.splitlines() if "value: " in line
    )

    table = run("dns", "example.org")
    assert table.exit_code == 0, table.output
    assert "DNS records for example.org" in table.output
    assert f"10 {HOST}" in table.output
    assert "v=spf1 mx -all" in table.output
    assert "v=DMARC1; p=quarantine;" in table.output
    assert "mail._domainkey.example.org" in table.output
    assert "_dmarc.example.org" in table.output

    zone = run("dns", "example.org", "--zone", "--dmarc-policy", "reject", "--ttl", "300")
    assert zone.exit_code == 0, zone.output
    lines = [line for line in zone.output.splitlines() if not line.startswith(";")]
    assert lines == [
        f"example.org.\t300\tIN\tMX\t10 {HOST}.",
        'example.org.\t300\tIN\tTXT\t"v=spf1 mx -all"',
        f'mail._domainkey.example.org.\t300\tIN\tTXT\t"{value}"',
        '_dmarc.example.org.\t300\tIN\tTXT\t"v=DMARC1; p=reject; rua=mailto:postmaster@example.org"',  # noqa: E501
    ]


def test_dns_keeps_a_rotated_out_key_published(run) -> None:  # type: ignore[no-untyped-def]
    """After a rotation, `mailctl dns` lists the signing key and the retired one, marked."""
    assert run("domain", "add", "example.org").exit_code == 0
    assert run("dkim", "add", "example.org", "--key-type", "ed25519").exit_code == 0
    old = run("dkim", "show", "example.org").output
    old_value = next(line.split("value: ", 1)[1] for line in old.splitlines() if "value: " in line)
    rotated = run("dkim", "rotate", "example.org")
    assert rotated.exit_code == 0, rotated.output
    new = run("dkim", "show", "example.org").output
    new_value = next(line.split("value: ", 1)[1] for line in new.splitlines() if "value: " in line)
    new_name = next(line.split("name:  ", 1)[1] for line in new.splitlines() if "name:  " in line)
    assert new_name != "mail._domainkey.example.org"

    zone = run("dns", "example.org", "--zone")
    assert zone.exit_code == 0, zone.output
    lines = zone.output.splitlines()
    signing = lines.index(f'{new_name}.\t3600\tIN\tTXT\t"{new_value}"')
    retired = lines.index(f'mail._domainkey.example.org.\t3600\tIN\tTXT\t"{old_value}"')
    assert lines[signing - 1] == "; DKIM: the public half of the signing key"
    assert lines[retired - 1].startswith("; DKIM: a retired key, no longer signing; keep it")
    assert "no DKIM key signs" not in zone.output

    table = run("dns", "example.org")
    assert table.exit_code == 0, table.output
    rows = table.output.splitlines()
    assert any(new_name in row and "signing" in row for row in rows), table.output
    assert any("mail._domainkey.example.org" in row and "retired" in row for row in rows)
    assert "`mailctl dkim rm example.org mail`" in table.output


def test_dns_without_a_dkim_key_says_how_to_make_one(run) -> None:  # type: ignore[no-untyped-def]
    """A domain with no key gets MX, SPF and DMARC, and a note naming `mailctl dkim add`."""
    assert run("domain", "add", "example.net").exit_code == 0
    zone = run("dns", "example.net", "--zone")
    assert zone.exit_code == 0, zone.output
    assert "_domainkey" not in zone.output
    assert "_dmarc.example.net." in zone.output
    assert "`mailctl dkim add example.net` makes one." in zone.output


def test_dns_of_an_unknown_domain_is_not_found(run) -> None:  # type: ignore[no-untyped-def]
    """An unknown domain exits 4 with the service's message."""
    missing = run("dns", "nowhere.example")
    assert missing.exit_code == 4
    assert "The domain nowhere.example does not exist." in missing.output


def test_apply_fails_when_postfix_cannot_read_the_database(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """With the database where the postfix user cannot read it (a root-only folder), apply
    still writes the files, but exits 8 and prints the failed map lookups with their fix.
    """
    assert os.geteuid() == 0, "setup --apply hands folders to the daemons' users: run as root"
    upload_certificate(run, tmp_path, {})
    stack = tmp_path / "stack"
    applied = run("setup", "--apply", "--root", str(stack), "--listen", "127.0.0.1", *ports())
    assert applied.exit_code == 8, applied.output
    assert "fail postfix.map.domains: The lookup of mailctl-check.invalid" in applied.output
    assert "Permission denied" in applied.output
    assert "fix: Postfix reads" in applied.output
    assert "the files are in place, but the checks above failed." in applied.output
    assert (stack / "postfix" / "etc" / "main.cf").is_file()


def test_dry_run_warns_when_a_reload_command_points_elsewhere(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A MAILCTL_RELOAD_OPENDKIM set by the admin wins, and setup says it is not the
    layout's own command; the others follow the layout below --root.
    """
    stack = tmp_path / "stack"
    extra = {**LAYOUT_RELOADS, "MAILCTL_RELOAD_OPENDKIM": "service opendkim restart"}
    shown = run("setup", "--root", str(stack), *ports(), extra=extra)
    assert shown.exit_code == 0, shown.output
    assert "reload with opendkim: service opendkim restart" in shown.output
    assert f"reload with dovecot: dovecot -c {stack}/dovecot/etc/dovecot.conf reload" in (
        shown.output
    )
    assert "MAILCTL_RELOAD_OPENDKIM is `service opendkim restart`, which may reload another" in (
        " ".join(shown.output.split())
    )
    assert "MAILCTL_RELOAD_DOVECOT" not in shown.output


def test_check_of_a_layout_with_nothing_in_it(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`check --root` on an empty folder exits 8 with a fix per failed line; --json too."""
    empty = tmp_path / "nothing"
    done = run("check", "--root", str(empty), *ports()[:2])
    assert done.exit_code == 8, done.output
    assert "fail postfix.running: postfix is not running" in done.output
    assert f"fix: Start it: `postfix -c {empty}/postfix/etc start`." in done.output
    assert "fail postfix.map.domains: Postfix in" in done.output
    assert f"fail config.files: {empty}/postfix/etc/main.cf is missing" in done.output
    assert "fix: Run `mailctl setup --apply` with the options of this host" in done.output
    assert "skip dovecot.passdb: Dovecot is not running" in done.output
    assert "fail tls.certificate: mailctl holds no certificate for mail.example.com." in done.output
    assert "checks failed." in done.output

    shown = run("check", "--json", "--root", str(empty))
    assert shown.exit_code == 8
    body = json.loads(shown.stdout)
    assert body["ok"] is False
    statuses = {check["name"]: check["status"] for check in body["checks"]}
    assert statuses["database"] == "ok"
    assert statuses["opendkim.running"] == "fail"
    assert statuses["tls.imaps"] == "skip"


def test_check_refuses_bad_options_and_a_damaged_record(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A bad listen address exits 2; a damaged stack.json exits 8 saying how to rewrite it."""
    bad = run("check", "--listen", "somewhere")
    assert bad.exit_code == 2
    assert "The listen address 'somewhere' must be an IPv4 address" in bad.output

    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "stack.json").write_text("not json")
    damaged = run("check")
    assert damaged.exit_code == 8
    said = " ".join(damaged.output.split())
    assert "stack.json is damaged: run `mailctl setup --apply` again" in said
    assert "Traceback" not in damaged.output

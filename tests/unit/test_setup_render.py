"""`mailctl setup` without daemons: the stack it plans from the settings, and how it applies."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import quote

import pytest

from mailctl.config import Settings
from mailctl.errors import HostStateError, InvalidInputError
from mailctl.host.stack import RenderedFile
from mailctl.services import daemon_role, setup
from mailctl.services.setup import SetupOptions, SetupPlan

HOST = "mail.example.org"


def settings_in(tmp_path: Path, **changes: object) -> Settings:
    """A mail host's settings with every path below ``tmp_path``."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": f"sqlite:///{tmp_path / 'mailctl.db'}",
        "mail_hostname": HOST,
        "mail_uid": 5000,
        "mail_gid": 5001,
        **changes,
    }
    return Settings(**values)  # type: ignore[arg-type]


class FakeRunner:
    """Answers every command with a fixed status per program, and records what ran."""

    def __init__(self, status: dict[str, int] | None = None, missing: Sequence[str] = ()) -> None:
        self.status = status or {}
        self.missing = set(missing)
        self.ran: list[tuple[str, ...]] = []

    def which(self, name: str) -> str | None:
        """Every program is installed unless named missing."""
        return None if name in self.missing else f"/usr/sbin/{name}"

    def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        """Record the command and answer with its program's status."""
        self.ran.append(tuple(argv))
        status = self.status.get(argv[0], 0)
        return status, "" if status == 0 else f"{argv[0]}: bad line 3"


# --- planning -----------------------------------------------------------------------------


def test_daemons_read_what_mailctl_renders(tmp_path: Path) -> None:
    """Mail root, OpenDKIM tables and the host's certificate come from the settings."""
    settings = settings_in(tmp_path, opendkim_dir=tmp_path / "dkim", tls_dir=tmp_path / "tls")
    cfg = setup.stack_config(settings, SetupOptions())
    assert cfg.hostname == HOST
    assert cfg.mail_root == tmp_path / "data" / "mail"
    assert cfg.opendkim_key_table == tmp_path / "dkim" / "KeyTable"
    assert cfg.opendkim_signing_table == tmp_path / "dkim" / "SigningTable"
    assert cfg.opendkim_trusted_hosts == tmp_path / "dkim" / "TrustedHosts"
    assert cfg.tls_cert == tmp_path / "tls" / HOST / "fullchain.pem"
    assert cfg.tls_key == tmp_path / "tls" / HOST / "privkey.pem"
    assert (cfg.vmail_uid, cfg.vmail_gid) == (5000, 5001)
    assert cfg.backend.kind == "sqlite"
    assert cfg.backend.database == str(tmp_path / "mailctl.db")


def test_defaults_fit_a_debian_host(tmp_path: Path) -> None:
    """Without options: Debian's folders, the standard ports, every address."""
    cfg = setup.stack_config(settings_in(tmp_path), SetupOptions())
    assert cfg.postfix_main_cf == Path("/etc/postfix/main.cf")
    assert cfg.dovecot_conf == Path("/etc/dovecot/dovecot.conf")
    assert cfg.opendkim_conf == Path("/etc/opendkim.conf")
    assert cfg.opendkim_pid_file == Path("/run/opendkim/opendkim.pid")
    assert cfg.postfix_pid_file == Path("/var/spool/postfix/pid/master.pid")
    ports = (cfg.smtp_port, cfg.submission_port, cfg.imap_port, cfg.imaps_port, cfg.milter_port)
    assert ports == (25, 587, 143, 993, 8891)
    assert cfg.listen_address == "*"


def test_root_and_folder_options_move_the_daemons_files(tmp_path: Path) -> None:
    """--root lays every daemon folder below it; --postfix-dir and friends win over it."""
    options = SetupOptions(root=tmp_path / "stack", dovecot_dir=tmp_path / "dovecot-conf")
    cfg = setup.stack_config(settings_in(tmp_path), options)
    assert cfg.postfix_main_cf == tmp_path / "stack" / "postfix" / "etc" / "main.cf"
    assert cfg.postfix_queue_dir == tmp_path / "stack" / "postfix" / "spool"
    assert cfg.dovecot_conf == tmp_path / "dovecot-conf" / "dovecot.conf"
    assert cfg.opendkim_run_dir == tmp_path / "stack" / "opendkim" / "run"


def test_public_listeners_on_every_address_keep_the_milter_local(tmp_path: Path) -> None:
    """Listening on '*' opens Postfix and Dovecot everywhere, OpenDKIM stays on loopback."""
    plan = setup.plan_setup(settings_in(tmp_path), SetupOptions())
    files = {file.path.name: file.content for file in plan.files}
    assert "inet_interfaces = all\n" in files["main.cf"]
    assert "\n25 inet n - n - - smtpd\n" in files["master.cf"]
    assert "listen = *, ::\n" in files["dovecot.conf"]
    assert "Socket inet:8891@127.0.0.1\n" in files["opendkim.conf"]


def test_a_listen_address_that_is_no_ip_is_refused(tmp_path: Path) -> None:
    """A host name or garbage as the listen address is refused before anything renders."""
    with pytest.raises(InvalidInputError, match="must be an IPv4 address or"):
        setup.plan_setup(settings_in(tmp_path), SetupOptions(listen_address="example.org"))


def test_hostname_option_wins_and_a_missing_one_is_refused(tmp_path: Path) -> None:
    """--hostname overrides the setting (with a note); with neither, setup refuses."""
    plan = setup.plan_setup(settings_in(tmp_path), SetupOptions(hostname="MX.example.org"))
    assert plan.cfg.hostname == "mx.example.org"
    assert any("uploaded certificates are stored under" in w for w in plan.warnings)
    with pytest.raises(InvalidInputError, match="MAILCTL_MAIL_HOSTNAME"):
        setup.stack_config(settings_in(tmp_path, mail_hostname=""), SetupOptions())


def test_backend_option_must_match_the_url(tmp_path: Path) -> None:
    """--backend names the URL's kind or is refused; a matching one is accepted."""
    url = "mysql+pymysql://mail:pw@db.internal:3307/mailctl"
    daemons = "mysql+pymysql://daemons:pw2@db.internal:3307/mailctl"
    settings = settings_in(tmp_path, database_url=url, daemon_database_url=daemons)
    cfg = setup.stack_config(settings, SetupOptions(backend="mariadb"))
    assert (cfg.backend.host, cfg.backend.port, cfg.backend.user) == (
        "db.internal",
        3307,
        "daemons",
    )
    with pytest.raises(InvalidInputError, match="--backend postgresql does not match"):
        setup.stack_config(settings, SetupOptions(backend="postgresql"))


@pytest.mark.parametrize("scheme", ["postgresql+psycopg", "mysql+pymysql"])
def test_shown_files_mask_the_database_password(tmp_path: Path, scheme: str) -> None:
    """The display copy hides the password in every file, however the file writes it
    (encoded in a URI, quoted twice, in an option file); the files to write keep it.
    """
    password = 'Secret 9\'s \\ "x" #$%@:/'
    url = f"{scheme}://mailctl:other@db.internal/mailctl"
    daemons = f"{scheme}://daemons:{quote(password, safe='')}@db.internal/mailctl"
    settings = settings_in(tmp_path, database_url=url, daemon_database_url=daemons)
    plan = setup.plan_setup(settings, SetupOptions())
    shown = setup.shown_files(plan)
    assert [file.path for file in shown] == [file.path for file in plan.files]
    assert not any("Secret" in file.content for file in shown)
    holding = [file for file in plan.files if "Secret" in file.content]
    assert len(holding) >= 4
    by_path = {file.path: file for file in shown}
    assert all(setup.MASK in by_path[file.path].content for file in holding)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://mailctl:Own-Secret@db.internal/mailctl",
        "mysql+pymysql://mailctl:Own-Secret@db.internal/mailctl",
    ],
)
def test_without_a_daemon_role_the_files_never_carry_mailctls_login(
    tmp_path: Path, url: str
) -> None:
    """With no MAILCTL_DAEMON_DATABASE_URL the plan names the daemons' role without a
    password, says what to do, and apply refuses before writing anything.
    """
    plan = setup.plan_setup(settings_in(tmp_path, database_url=url), SetupOptions(root=tmp_path))
    assert not any("Own-Secret" in file.content for file in plan.files)
    assert any("mailctl_daemons" in file.content for file in plan.files)
    assert plan.refusal is not None
    assert "MAILCTL_DAEMON_DATABASE_URL is not set" in plan.refusal
    assert "mailctl setup --grants" in plan.refusal
    assert "mailctl_daemons:PASSWORD@db.internal/mailctl" in plan.refusal
    with pytest.raises(InvalidInputError, match="MAILCTL_DAEMON_DATABASE_URL is not set"):
        setup.apply_setup(plan, runner=FakeRunner())
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("daemons", "message"),
    [
        ("postgresql+psycopg://mailctl:x@db.internal/mailctl", "not mailctl's user"),
        ("postgresql+psycopg://daemons:x@db.internal/other", "names the database 'other'"),
        ("mysql+pymysql://daemons:x@db.internal/mailctl", "is a mariadb database"),
    ],
)
def test_a_daemon_url_that_is_not_their_own_role_is_refused(
    tmp_path: Path, daemons: str, message: str
) -> None:
    """The daemons' URL must name another user of the same database and kind."""
    url = "postgresql+psycopg://mailctl:own@db.internal/mailctl"
    settings = settings_in(tmp_path, database_url=url, daemon_database_url=daemons)
    with pytest.raises(InvalidInputError, match=message):
        setup.plan_setup(settings, SetupOptions())


def test_sqlite_says_the_daemons_read_the_secrets_too(tmp_path: Path) -> None:
    """On SQLite the note says plainly the daemons can read every secret; a daemons' URL
    is refused, as are grants.
    """
    notes = setup.plan_setup(settings_in(tmp_path), SetupOptions()).warnings
    assert any("token signing secret and every DKIM and TLS private key" in n for n in notes)
    other = settings_in(tmp_path, daemon_database_url="postgresql+psycopg://d:x@h/db")
    with pytest.raises(InvalidInputError, match="on SQLite the daemons read"):
        setup.plan_setup(other, SetupOptions())
    with pytest.raises(InvalidInputError, match="SQLite has no roles"):
        daemon_role.grant_sql(settings_in(tmp_path))


def test_systemd_units_run_serve_and_agent_with_the_env_file(tmp_path: Path) -> None:
    """Two units, each with the env file and the mailctl command given."""
    options = SetupOptions(
        systemd_dir=tmp_path / "units",
        env_file=Path("/etc/mailctl/env"),
        mailctl_command=("/opt/mailctl/bin/mailctl",),
    )
    units = {file.path.name: file for file in setup.systemd_units(options)}
    assert sorted(units) == ["mailctl-agent.service", "mailctl.service"]
    serve = units["mailctl.service"].content
    assert "ExecStart=/opt/mailctl/bin/mailctl serve\n" in serve
    assert "EnvironmentFile=/etc/mailctl/env\n" in serve
    assert "ExecStart=/opt/mailctl/bin/mailctl agent\n" in units["mailctl-agent.service"].content
    assert setup.systemd_units(SetupOptions()) == []


def test_plan_notes_what_the_operator_should_know(tmp_path: Path) -> None:
    """SQLite and disabled reloads each earn a note."""
    notes = setup.plan_setup(settings_in(tmp_path), SetupOptions()).warnings
    assert any("SQLite" in note for note in notes)
    assert any("MAILCTL_RELOAD_ENABLED is off" in note for note in notes)


# --- applying -----------------------------------------------------------------------------


def small_plan(tmp_path: Path) -> SetupPlan:
    """A plan of two daemon files below ``tmp_path``, owned by whoever runs the test."""
    plan = setup.plan_setup(settings_in(tmp_path), SetupOptions(root=tmp_path / "stack"))
    for path in (plan.cfg.tls_cert, plan.cfg.tls_key):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("pem\n")
    files = (
        RenderedFile(plan.cfg.postfix_main_cf, "myhostname = new\n", 0o644, "postfix"),
        RenderedFile(plan.cfg.dovecot_conf, "listen = new\n", 0o640, "dovecot"),
    )
    return dataclasses.replace(plan, files=files, directories=())


def test_apply_writes_files_with_their_modes_once(tmp_path: Path) -> None:
    """The first run writes each file with its mode; the second finds them up to date."""
    plan = small_plan(tmp_path)
    first = setup.apply_setup(plan, runner=FakeRunner())
    assert first.written == (plan.cfg.postfix_main_cf, plan.cfg.dovecot_conf)
    assert plan.cfg.dovecot_conf.read_text() == "listen = new\n"
    assert plan.cfg.dovecot_conf.stat().st_mode & 0o777 == 0o640
    assert [check.status for check in first.checks] == ["passed"] * 3
    second = setup.apply_setup(plan, runner=FakeRunner())
    assert second.written == ()
    assert second.unchanged == (plan.cfg.postfix_main_cf, plan.cfg.dovecot_conf)
    assert {reload.status for reload in second.reloads} == {"unchanged"}


def test_a_refused_check_puts_the_previous_files_back(tmp_path: Path) -> None:
    """When postfix check fails, the old main.cf returns, a new file vanishes, setup raises."""
    plan = small_plan(tmp_path)
    plan.cfg.postfix_main_cf.parent.mkdir(parents=True)
    plan.cfg.postfix_main_cf.write_text("myhostname = old\n")
    plan.cfg.postfix_main_cf.chmod(0o600)
    with pytest.raises(HostStateError, match=r"refused \(postfix: postfix: bad line 3\)"):
        setup.apply_setup(plan, runner=FakeRunner({"postfix": 1}))
    assert plan.cfg.postfix_main_cf.read_text() == "myhostname = old\n"
    assert plan.cfg.postfix_main_cf.stat().st_mode & 0o777 == 0o600
    assert not plan.cfg.dovecot_conf.exists()


def test_a_write_that_fails_puts_back_the_files_written_before_it(tmp_path: Path) -> None:
    """When one file cannot be written, the ones already written return and nothing runs."""
    plan = small_plan(tmp_path)
    plan.cfg.postfix_main_cf.parent.mkdir(parents=True)
    plan.cfg.postfix_main_cf.write_text("myhostname = old\n")
    # A non-empty folder where dovecot.conf should go makes that write fail for real.
    plan.cfg.dovecot_conf.mkdir(parents=True)
    (plan.cfg.dovecot_conf / "x").write_text("")
    runner = FakeRunner()
    with pytest.raises(HostStateError, match="Cannot write"):
        setup.apply_setup(plan, runner=runner)
    assert plan.cfg.postfix_main_cf.read_text() == "myhostname = old\n"
    assert runner.ran == []


def test_a_missing_daemon_is_not_checked(tmp_path: Path) -> None:
    """A check whose program is not installed is reported, not run, and does not fail."""
    runner = FakeRunner(missing=["opendkim"])
    result = setup.apply_setup(small_plan(tmp_path), runner=runner)
    statuses = {check.daemon: check.status for check in result.checks}
    assert statuses == {"postfix": "passed", "dovecot": "passed", "opendkim": "not installed"}
    assert all(argv[0] != "opendkim" for argv in runner.ran)


def test_only_running_daemons_with_changed_files_are_reloaded(tmp_path: Path) -> None:
    """Postfix (its pid file names a live process) is reloaded; Dovecot is not running."""
    plan = small_plan(tmp_path)
    plan.cfg.postfix_pid_file.parent.mkdir(parents=True)
    plan.cfg.postfix_pid_file.write_text(f"{os.getpid():>10}\n")
    runner = FakeRunner()
    result = setup.apply_setup(plan, runner=runner)
    statuses = {reload.daemon: reload.status for reload in result.reloads}
    assert statuses == {"postfix": "reloaded", "dovecot": "not running", "opendkim": "unchanged"}
    assert ("postfix", "-c", str(plan.cfg.postfix_config_dir), "reload") in runner.ran
    assert result.ok


def test_a_failed_reload_is_reported_and_not_ok(tmp_path: Path) -> None:
    """A running daemon that refuses its reload makes the result not ok, with the reason."""
    plan = small_plan(tmp_path)
    plan.cfg.postfix_pid_file.parent.mkdir(parents=True)
    plan.cfg.postfix_pid_file.write_text(f"{os.getpid()}\n")

    class ReloadFails(FakeRunner):
        def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
            """Checks pass; reloads fail."""
            self.ran.append(tuple(argv))
            return (1, "fatal: not today") if argv[-1] == "reload" else (0, "")

    result = setup.apply_setup(plan, runner=ReloadFails())
    failed = [reload for reload in result.reloads if reload.status == "failed"]
    assert [(r.daemon, r.detail) for r in failed] == [("postfix", "exit 1: fatal: not today")]
    assert not result.ok


def test_no_certificate_means_nothing_is_written(tmp_path: Path) -> None:
    """Without the host's certificate, apply names the commands that install one."""
    plan = small_plan(tmp_path)
    plan.cfg.tls_key.unlink()
    with pytest.raises(HostStateError, match=f"There is no certificate for {HOST}"):
        setup.apply_setup(plan, runner=FakeRunner())
    assert not plan.cfg.postfix_main_cf.exists()

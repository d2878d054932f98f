"""Wiring a mail host: render Postfix, Dovecot and OpenDKIM for mailctl's database, and apply it.

plan (settings + options → a StackConfig and every file, pure but for a user lookup)
→ apply (directories, atomic writes, the daemons' own checks with the old files put back
on refusal, reloads of the daemons that run). The DNS records a domain needs are in
``services.dns``.
"""

from __future__ import annotations

import dataclasses
import grp
import pwd
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailctl.config import Settings
from mailctl.domain.names import normalize_domain
from mailctl.errors import HostStateError, InvalidInputError
from mailctl.host import install
from mailctl.host.changes import FileChanges
from mailctl.host.plan import read_file
from mailctl.host.stack import (
    DOVECOT,
    OPENDKIM,
    POSTFIX,
    RenderedFile,
    RequiredDir,
    SqlBackend,
    StackConfig,
    render_stack,
    stack_commands,
    stack_directories,
)
from mailctl.services import check, daemon_role, stack_record
from mailctl.services.context import Context
from mailctl.services.reconcile import reconcile

DAEMONS = (POSTFIX, DOVECOT, OPENDKIM)
VMAIL_USER = "vmail"
MASK = "********"
_STAND_IN = "MailctlMaskedPassword0"
CHECK_TIMEOUT = 60.0

# Where Debian's packages keep each daemon's files; the daemons' own unit files expect them.
DEBIAN_LAYOUT: dict[str, Path] = {
    "postfix_config_dir": Path("/etc/postfix"),
    "postfix_queue_dir": Path("/var/spool/postfix"),
    "postfix_data_dir": Path("/var/lib/postfix"),
    "postfix_log": Path("/var/log/postfix.log"),
    "dovecot_config_dir": Path("/etc/dovecot"),
    "dovecot_base_dir": Path("/run/dovecot"),
    "dovecot_state_dir": Path("/var/lib/dovecot"),
    "dovecot_log": Path("/var/log/dovecot.log"),
    # Debian's opendkim.service starts `opendkim` with no arguments: /etc/opendkim.conf.
    "opendkim_config_dir": Path("/etc"),
    "opendkim_run_dir": Path("/run/opendkim"),
}


@dataclass(frozen=True)
class SetupOptions:
    """What `mailctl setup` is told besides the settings; defaults fit a Debian mail host."""

    backend: str | None = None  # must agree with the database URL when given
    root: Path | None = None  # lay the daemons' folders out below this folder instead
    postfix_dir: Path | None = None
    dovecot_dir: Path | None = None
    opendkim_dir: Path | None = None  # the folder of opendkim.conf
    hostname: str | None = None  # default: the mail_hostname setting
    listen_address: str = "*"
    smtp_port: int = 25
    submission_port: int = 587
    imap_port: int = 143
    imaps_port: int = 993
    milter_port: int = 8891
    # Loopback only: where Dovecot's Sieve hands Postfix auto-replies and redirects.
    reinject_port: int = 10025
    # Off only where keys must live below a folder others may write to (a test under /tmp).
    opendkim_require_safe_keys: bool = True
    systemd_dir: Path | None = None  # None: write no systemd units
    env_file: Path = Path("/etc/mailctl/env")
    mailctl_command: tuple[str, ...] = ("/usr/local/bin/mailctl",)


@dataclass(frozen=True)
class SetupPlan:
    """Everything setup would write, and what the operator should know before it does."""

    cfg: StackConfig
    files: tuple[RenderedFile, ...]
    directories: tuple[RequiredDir, ...]
    warnings: tuple[str, ...] = ()
    refusal: str | None = None  # why apply must not write these files
    options: SetupOptions | None = None
    # The argv each daemon will be reloaded with after a change (reconcile, the agent).
    reload_commands: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class CheckOutcome:
    """One daemon's verdict on its new configuration."""

    daemon: str
    command: tuple[str, ...]
    status: str  # "passed", "failed" or "not installed"
    output: str = ""


@dataclass(frozen=True)
class ReloadOutcome:
    """Whether a daemon was told to load its new files."""

    daemon: str
    status: str  # "reloaded", "not running", "unchanged" or "failed"
    detail: str = ""


@dataclass(frozen=True)
class SetupResult:
    """What apply changed on the host."""

    written: tuple[Path, ...] = ()
    unchanged: tuple[Path, ...] = ()
    created_dirs: tuple[Path, ...] = ()
    reconciled: tuple[str, ...] = ()  # daemons whose DKIM or TLS files were rendered anew
    checks: tuple[CheckOutcome, ...] = ()
    reloads: tuple[ReloadOutcome, ...] = field(default_factory=tuple)
    # `mailctl check` run on the new configuration (daemons that do not run are skipped).
    health: check.CheckReport = field(default_factory=check.CheckReport)
    record: Path | None = None  # where the layout was recorded for check and reloads

    @property
    def ok(self) -> bool:
        """True when every daemon that runs took its new files and no check failed."""
        reloaded = all(reload.status != "failed" for reload in self.reloads)
        return reloaded and self.health.ok


# --- plan ---------------------------------------------------------------------------------


def _vmail_ids(settings: Settings) -> tuple[int, int]:
    if settings.mail_uid is not None and settings.mail_gid is not None:
        return settings.mail_uid, settings.mail_gid
    try:
        entry = pwd.getpwnam(VMAIL_USER)
    except KeyError:
        raise InvalidInputError(
            f"There is no {VMAIL_USER} user to own the mail: create it (useradd --system "
            f"--user-group {VMAIL_USER}) or set MAILCTL_MAIL_UID and MAILCTL_MAIL_GID."
        ) from None
    uid = entry.pw_uid if settings.mail_uid is None else settings.mail_uid
    gid = entry.pw_gid if settings.mail_gid is None else settings.mail_gid
    return uid, gid


def _account_names(uid: int, gid: int) -> tuple[str, str]:
    """The names of the mail account and group (Dovecot's sockets are owned by name)."""
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = VMAIL_USER
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = VMAIL_USER
    return user, group


def _backend(settings: Settings, wanted: str | None) -> SqlBackend:
    # The daemons' own role, never mailctl's login (see daemon_role).
    backend = daemon_role.daemon_access(settings).backend
    if wanted is not None and wanted != backend.kind:
        raise InvalidInputError(
            f"--backend {wanted} does not match the database URL, which is {backend.kind}; "
            "the daemons must read the database mailctl writes (set MAILCTL_DATABASE_URL)."
        )
    return backend


def _layout(options: SetupOptions) -> dict[str, Path]:
    if options.root is None:
        layout = dict(DEBIAN_LAYOUT)
    else:
        root = options.root.absolute()
        layout = {
            "postfix_config_dir": root / "postfix" / "etc",
            "postfix_queue_dir": root / "postfix" / "spool",
            "postfix_data_dir": root / "postfix" / "lib",
            "postfix_log": root / "log" / "postfix.log",
            "dovecot_config_dir": root / "dovecot" / "etc",
            "dovecot_base_dir": root / "dovecot" / "run",
            "dovecot_state_dir": root / "dovecot" / "lib",
            "dovecot_log": root / "log" / "dovecot.log",
            "opendkim_config_dir": root / "opendkim" / "etc",
            "opendkim_run_dir": root / "opendkim" / "run",
        }
    for key, given in (
        ("postfix_config_dir", options.postfix_dir),
        ("dovecot_config_dir", options.dovecot_dir),
        ("opendkim_config_dir", options.opendkim_dir),
    ):
        if given is not None:
            layout[key] = given.absolute()
    return layout


def stack_config(settings: Settings, options: SetupOptions) -> StackConfig:
    """The stack serving mailctl's database, mail, DKIM tables and certificate.

    The daemons' own folders come from the options (Debian's by default); what mailctl
    renders (maildirs, OpenDKIM tables, the certificate of the mail host name) comes from
    the settings, so the daemons read exactly what the API and reconcile write.
    """
    hostname = options.hostname or settings.mail_hostname
    if not hostname.strip():
        raise InvalidInputError(
            "The mail host name is not set: set MAILCTL_MAIL_HOSTNAME or pass --hostname."
        )
    name = normalize_domain(hostname)
    uid, gid = _vmail_ids(settings)
    vmail_user, vmail_group = _account_names(uid, gid)
    opendkim = settings.opendkim_path
    cert_dir = settings.tls_path / name
    layout = _layout(options)
    return StackConfig(
        hostname=name,
        backend=_backend(settings, options.backend),
        mail_root=settings.mail_root_path,
        vmail_uid=uid,
        vmail_gid=gid,
        vmail_user=vmail_user,
        vmail_group=vmail_group,
        postfix_config_dir=layout["postfix_config_dir"],
        postfix_queue_dir=layout["postfix_queue_dir"],
        postfix_data_dir=layout["postfix_data_dir"],
        postfix_log=layout["postfix_log"],
        dovecot_config_dir=layout["dovecot_config_dir"],
        dovecot_base_dir=layout["dovecot_base_dir"],
        dovecot_state_dir=layout["dovecot_state_dir"],
        dovecot_log=layout["dovecot_log"],
        opendkim_config_dir=layout["opendkim_config_dir"],
        opendkim_run_dir=layout["opendkim_run_dir"],
        opendkim_key_table=opendkim / "KeyTable",
        opendkim_signing_table=opendkim / "SigningTable",
        opendkim_trusted_hosts=opendkim / "TrustedHosts",
        tls_cert=cert_dir / "fullchain.pem",
        tls_key=cert_dir / "privkey.pem",
        smtp_port=options.smtp_port,
        submission_port=options.submission_port,
        imap_port=options.imap_port,
        imaps_port=options.imaps_port,
        milter_port=options.milter_port,
        listen_address=options.listen_address,
        opendkim_require_safe_keys=options.opendkim_require_safe_keys,
        sieve_dir=settings.sieve_path,
        reinject_port=options.reinject_port,
    )


def systemd_units(options: SetupOptions) -> list[RenderedFile]:
    """Units for `mailctl serve` and `mailctl agent` when the options ask for them."""
    if options.systemd_dir is None:
        return []
    return install.systemd_units(options.systemd_dir, options.env_file, options.mailctl_command)


def plan_setup(settings: Settings, options: SetupOptions) -> SetupPlan:
    """Every file and folder `setup` would write for these settings and options."""
    cfg = stack_config(settings, options)
    files = [*render_stack(cfg), *systemd_units(options)]
    warnings: list[str] = []
    if settings.mail_hostname and normalize_domain(settings.mail_hostname) != cfg.hostname:
        warnings.append(
            f"MAILCTL_MAIL_HOSTNAME is {settings.mail_hostname}, but the daemons will serve "
            f"{cfg.hostname}: uploaded certificates are stored under the former."
        )
    if not settings.reload_enabled:
        warnings.append(
            "MAILCTL_RELOAD_ENABLED is off: after a change, mailctl will write the DKIM and "
            "TLS files but not reload OpenDKIM, Postfix and Dovecot."
        )
    if not install.has_syslog():
        warnings.append(
            f"OpenDKIM logs only through syslog, and this host has no {install.SYSLOG_SOCKET}: "
            "what it says (a key it cannot read, a table it refuses) goes nowhere. Install a "
            "syslog daemon (rsyslog writes it to /var/log/mail.log) or run under systemd "
            "(journalctl -t opendkim)."
        )
    if cfg.backend.kind == "sqlite":
        warnings.append(
            "Postfix and Dovecot read the SQLite file as their own users: its folder and "
            "file must be readable by them, and they can then read all of it, the token "
            "signing secret and every DKIM and TLS private key included. Dovecot's dict "
            "process runs as root there, to write each mailbox's usage into the file. "
            "PostgreSQL or MariaDB, with a role for the daemons, keep those from them."
        )
    reloads = reload_plan(settings, cfg)
    warnings.extend(_reload_warnings(settings, cfg, reloads))
    return SetupPlan(
        cfg,
        tuple(files),
        tuple(stack_directories(cfg)),
        tuple(warnings),
        refusal=daemon_role.daemon_access(settings).missing,
        options=options,
        reload_commands=tuple((daemon, tuple(argv)) for daemon, argv in reloads.items()),
    )


def reload_plan(settings: Settings, cfg: StackConfig) -> dict[str, list[str]]:
    """The reload argv of each daemon once this layout is applied and recorded.

    The layout's own commands, unless the admin set MAILCTL_RELOAD_* (that wins).
    """
    layout = stack_commands(cfg)
    configured = settings.model_copy(update={"reload_enabled": True}).reload_commands()
    return {
        daemon: configured[daemon]
        if f"reload_{daemon}" in settings.model_fields_set
        else layout[daemon]["reload"]
        for daemon in DAEMONS
    }


def _reload_warnings(
    settings: Settings, cfg: StackConfig, reloads: dict[str, list[str]]
) -> list[str]:
    layout = stack_commands(cfg)
    warnings = []
    for daemon in DAEMONS:
        if reloads[daemon] != layout[daemon]["reload"]:
            warnings.append(
                f"MAILCTL_RELOAD_{daemon.upper()} is `{shlex.join(reloads[daemon])}`, which "
                f"may reload another {daemon} than the one configured here; unset it to use "
                f"`{shlex.join(layout[daemon]['reload'])}`."
            )
    return warnings


def shown_files(setup: SetupPlan) -> list[RenderedFile]:
    """The plan's files for display: the database password replaced by asterisks.

    The files are rendered again with a plain stand-in password, which every daemon's
    syntax writes as it is (no quoting, no encoding), and the stand-in is then shown as
    asterisks, whatever file and syntax holds the password.
    """
    if not setup.cfg.backend.password:
        return list(setup.files)
    masked = dataclasses.replace(
        setup.cfg, backend=dataclasses.replace(setup.cfg.backend, password=_STAND_IN)
    )
    by_path = {
        file.path: dataclasses.replace(file, content=file.content.replace(_STAND_IN, MASK))
        for file in render_stack(masked)
    }
    return [by_path.get(file.path, file) for file in setup.files]


# --- apply --------------------------------------------------------------------------------


def _reconcile_files(ctx: Context) -> list[str]:
    """Render the DKIM tables and certificates the new configuration names; reload nothing.

    Setup reloads the daemons itself once their configuration is in place, and a daemon
    still running an old configuration may not even know these files yet.
    """
    current, head = ctx.database.schema_state()
    if current != head:
        raise HostStateError(
            "The database is not initialised or not up to date: run `mailctl init`."
        )
    files_only = dataclasses.replace(
        ctx, settings=ctx.settings.model_copy(update={"reload_enabled": False})
    )
    report = reconcile(files_only)
    daemons: set[str] = set()
    for path in (*report.written, *report.deleted):
        if Path(path).is_relative_to(ctx.settings.tls_path):
            daemons |= {POSTFIX, DOVECOT}
        else:
            daemons.add(OPENDKIM)
    return sorted(daemons)


def _check(cfg: StackConfig, runner: install.CommandRunner) -> list[CheckOutcome]:
    commands = stack_commands(cfg)
    outcomes = []
    for daemon in DAEMONS:
        argv = tuple(commands[daemon]["check"])
        if runner.which(argv[0]) is None:
            outcomes.append(CheckOutcome(daemon, argv, "not installed"))
            continue
        status, output = runner.run(argv, CHECK_TIMEOUT)
        outcomes.append(CheckOutcome(daemon, argv, "passed" if status == 0 else "failed", output))
    return outcomes


def _reload(
    cfg: StackConfig, changed: set[str], runner: install.CommandRunner
) -> list[ReloadOutcome]:
    commands = stack_commands(cfg)
    pid_files = {
        POSTFIX: cfg.postfix_pid_file,
        DOVECOT: cfg.dovecot_pid_file,
        OPENDKIM: cfg.opendkim_pid_file,
    }
    outcomes = []
    for daemon in DAEMONS:
        if daemon not in changed:
            outcomes.append(ReloadOutcome(daemon, "unchanged"))
        elif not install.is_running(pid_files[daemon]):
            outcomes.append(ReloadOutcome(daemon, "not running", "start it to use the new files"))
        else:
            status, output = runner.run(commands[daemon]["reload"], CHECK_TIMEOUT)
            if status == 0:
                outcomes.append(ReloadOutcome(daemon, "reloaded"))
            else:
                outcomes.append(ReloadOutcome(daemon, "failed", f"exit {status}: {output.strip()}"))
    return outcomes


def apply_setup(
    setup: SetupPlan, ctx: Context | None = None, runner: install.CommandRunner | None = None
) -> SetupResult:
    """Write the plan, have each daemon check it, put the old files back if one refuses.

    With ``ctx``, the OpenDKIM tables and the certificates are first rendered from the
    database (reconcile, without reloads), so every file the new configuration names
    exists. A daemon that is not installed is not checked; one that is not running is not
    reloaded. A refused check raises HostStateError after restoring the previous files;
    a plan with a refusal (no role of the daemons' own) raises InvalidInputError at once.
    """
    if setup.refusal is not None:
        raise InvalidInputError(f"{setup.refusal} Nothing was configured.")
    runner = runner or install.SystemRunner()
    for file in setup.files:
        install.lookup_id(file.group, "group")
    created = install.make_dirs(setup.directories)
    reconciled = _reconcile_files(ctx) if ctx is not None else []
    changed = set(reconciled)
    missing = [path for path in (setup.cfg.tls_cert, setup.cfg.tls_key) if not path.is_file()]
    if missing:
        raise HostStateError(
            f"There is no certificate for {setup.cfg.hostname} ({missing[0]} is missing): "
            f"install one with `mailctl cert upload` or `mailctl cert issue "
            f"{setup.cfg.hostname}`, then run setup again. Nothing was configured."
        )

    changes = FileChanges()
    unchanged: list[Path] = []
    with changes.undone_on_failure():
        for file in setup.files:
            gid = install.lookup_id(file.group, "group")
            old = read_file(file.path, follow_links=True)
            data = file.content.encode("utf-8")
            same_gid = old is not None and (gid is None or old.gid == gid)
            if old is not None and same_gid and (old.content, old.mode) == (data, file.mode):
                unchanged.append(file.path)
                continue
            changes.write(
                file.path,
                data,
                file.mode,
                0,
                gid,
                before=old,
                daemons={file.daemon},
                folder_mode=0o755,
            )
            changed.add(file.daemon)

    checks = _check(setup.cfg, runner)
    refused = [check for check in checks if check.status == "failed"]
    if refused:
        changes.put_back()
        details = "; ".join(f"{c.daemon}: {c.output.strip() or 'no output'}" for c in refused)
        raise HostStateError(
            f"The new configuration was refused ({details}). The previous files are back."
        )
    reloads = _reload(setup.cfg, changed, runner)
    record = None
    health = check.CheckReport()
    if ctx is not None:
        if setup.options is not None:
            record = _record(ctx.settings, setup)
        health = check.run_checks(ctx, setup.cfg, strict=False)
    return SetupResult(
        written=changes.written,
        unchanged=tuple(unchanged),
        created_dirs=tuple(created),
        reconciled=tuple(reconciled),
        checks=tuple(checks),
        reloads=tuple(reloads),
        health=health,
        record=record,
    )


# --- the record of what was applied, and checking it ------------------------------------

# The options that shape the stack; the systemd ones do not.
_RECORDED_PATHS = ("root", "postfix_dir", "dovecot_dir", "opendkim_dir")
_RECORDED_VALUES = (
    "backend",
    "listen_address",
    "smtp_port",
    "submission_port",
    "imap_port",
    "imaps_port",
    "milter_port",
    "reinject_port",
    "opendkim_require_safe_keys",
)


def _record(settings: Settings, setup: SetupPlan) -> Path:
    assert setup.options is not None
    options: dict[str, object] = {"hostname": setup.cfg.hostname}
    for name in _RECORDED_PATHS:
        value = getattr(setup.options, name)
        options[name] = None if value is None else str(value.absolute())
    for name in _RECORDED_VALUES:
        options[name] = getattr(setup.options, name)
    layout = stack_commands(setup.cfg)
    reloads = {daemon: layout[daemon]["reload"] for daemon in DAEMONS}
    return stack_record.write_record(settings, stack_record.StackRecord(options, reloads))


def recorded_options(settings: Settings) -> SetupOptions | None:
    """The layout options `setup --apply` recorded on this host, or None."""
    record = stack_record.read_record(settings)
    if record is None:
        return None
    values = record.options
    try:
        fields: dict[str, Any] = {
            name: Path(values[name]) if values.get(name) is not None else None
            for name in _RECORDED_PATHS
        }
        fields.update({name: values[name] for name in _RECORDED_VALUES if name in values})
        return dataclasses.replace(SetupOptions(), hostname=values.get("hostname"), **fields)
    except (TypeError, ValueError) as exc:
        raise HostStateError(
            f"{stack_record.record_path(settings)} is damaged ({exc}): run "
            "`mailctl setup --apply` again."
        ) from exc


def check_host(ctx: Context, overrides: dict[str, Any] | None = None) -> check.CheckReport:
    """`mailctl check`: the layout setup recorded (Debian's if none), with ``overrides``.

    ``overrides`` are SetupOptions fields given on the command line.
    """
    recorded = recorded_options(ctx.settings) or SetupOptions()
    try:
        chosen = dataclasses.replace(recorded, **(overrides or {}))
    except TypeError as exc:
        raise InvalidInputError(f"Unknown layout option: {exc}") from exc
    cfg = stack_config(ctx.settings, chosen)
    return check.run_checks(ctx, cfg, config_files=render_stack(cfg))

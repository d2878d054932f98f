"""`mailctl check`: does this mail host work as mailctl configured it, and if not, what to do.

Each check asks the daemon's own tools, as the daemon's own user where it matters
(Postfix's maps through ``postmap`` as postfix, Dovecot's passdb and userdb through
``doveadm`` against the running Dovecot, the TLS certificate each listener really serves,
OpenDKIM's key files by OpenDKIM's own safety rules), and every failure names its fix.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailctl.certs.probe import probe_certificate
from mailctl.certs.targets import Targets
from mailctl.domain import tls
from mailctl.errors import MailctlError
from mailctl.host import health, install
from mailctl.host.render import DesiredFile
from mailctl.host.stack import (
    DOVECOT,
    OPENDKIM,
    POSTFIX,
    RenderedFile,
    StackConfig,
    stack_commands,
)
from mailctl.services import check_files
from mailctl.services.check_report import FAIL, OK, SKIP, CheckReport, CheckResult, Verdicts
from mailctl.services.context import Context
from mailctl.services.reconcile import desired_files

__all__ = ["FAIL", "OK", "SKIP", "CheckReport", "CheckResult", "run_checks"]

TIMEOUT = 30.0
# The listeners probed are this host's own, from its configuration, not a client's choice:
# any address, and a failure says exactly what went wrong.
OWN_LISTENERS = Targets(trusted=True)
PROBE_DOMAIN = "mailctl-check.invalid"
PROBE_ADDRESS = f"nobody@{PROBE_DOMAIN}"
POSTFIX_USER = "postfix"
SAMPLE_DOMAINS = 20
# postconf parameter → the name of the map in the check's name and in mailctl's files.
POSTFIX_MAPS = {
    "virtual_mailbox_domains": "domains",
    "virtual_mailbox_maps": "mailboxes",
    "virtual_alias_maps": "aliases",
}
# doveadm's exit status for a user the databases do not know (sysexits EX_NOUSER).
DOVEADM_NO_USER = 67


@dataclass(frozen=True)
class Samples:
    """Real rows to look up, so a lookup proves the daemon sees mailctl's data."""

    domain: str | None = None
    mailbox: str | None = None
    alias: str | None = None
    certificate_pem: str | None = None
    database_ok: bool = True


def _samples(ctx: Context, hostname: str) -> Samples:
    with ctx.uow() as uow:
        domains = uow.domains.list_with_counts()
        domain = domains[0][0].name if domains else None
        mailbox = alias = None
        # A few domains are enough to find a mailbox and an alias; never one query each.
        for row, count in domains[:SAMPLE_DOMAINS]:
            if mailbox is None and count:
                users = uow.users.list_for_domain(row.id)
                mailbox = users[0].email if users else None
            if alias is None:
                aliases = uow.aliases.list_for_domain(row.id)
                alias = aliases[0].source if aliases else None
            if mailbox is not None and alias is not None:
                break
        cert = uow.certificates.by_name(hostname)
        pem = cert.chain_pem if cert is not None else None
    return Samples(domain, mailbox, alias, pem)


def _pid_files(cfg: StackConfig) -> dict[str, Path]:
    return {
        POSTFIX: cfg.postfix_pid_file,
        DOVECOT: cfg.dovecot_pid_file,
        OPENDKIM: cfg.opendkim_pid_file,
    }


class _Checker(Verdicts):
    """Runs the checks of one host that ask its daemons, and collects their verdicts."""

    def __init__(self, ctx: Context, cfg: StackConfig, strict: bool) -> None:
        super().__init__(strict)
        self.ctx = ctx
        self.cfg = cfg
        self.commands = stack_commands(cfg)
        self.running: dict[str, bool] = {}

    # --- database and daemons ---------------------------------------------------------

    def database(self) -> Samples:
        try:
            current, head = self.ctx.database.schema_state()
            if current != head:
                self.add(
                    "database",
                    FAIL,
                    "mailctl's database is not initialised or not up to date.",
                    "Run `mailctl init`.",
                )
                return Samples(database_ok=False)
            samples = _samples(self.ctx, self.cfg.hostname)
        except MailctlError as exc:
            self.add("database", FAIL, exc.message, "Check MAILCTL_DATABASE_URL.")
            return Samples(database_ok=False)
        self.add("database", OK, "mailctl's database answers and its schema is current.")
        return samples

    def daemons(self) -> None:
        for daemon, pid_file in _pid_files(self.cfg).items():
            running = install.is_running(pid_file)
            self.running[daemon] = running
            if running:
                self.add(f"{daemon}.running", OK, f"{daemon} runs (pid file {pid_file}).")
                continue
            start = health.describe(self.commands[daemon]["start"])
            self.missing(
                f"{daemon}.running",
                f"{daemon} is not running (no live process in {pid_file}).",
                f"Start it: `{start}`.",
            )

    # --- Postfix ----------------------------------------------------------------------

    def postfix_maps(self, samples: Samples) -> None:
        config_dir = str(self.cfg.postfix_config_dir)
        if shutil.which("postmap") is None or shutil.which("postconf") is None:
            self.missing("postfix.maps", "Postfix is not installed.", "apt-get install postfix")
            return
        keys = {
            "domains": samples.domain or PROBE_DOMAIN,
            "mailboxes": samples.mailbox or PROBE_ADDRESS,
            "aliases": samples.alias or samples.mailbox or PROBE_ADDRESS,
        }
        real = {
            "domains": samples.domain is not None,
            "mailboxes": samples.mailbox is not None,
            "aliases": (samples.alias or samples.mailbox) is not None,
        }
        for parameter, name in POSTFIX_MAPS.items():
            check = f"postfix.map.{name}"
            asked = health.run_as(["postconf", "-c", config_dir, "-h", parameter], None, TIMEOUT)
            table = asked.stdout.strip()
            if asked.status != 0 or not table:
                self.add(
                    check,
                    FAIL,
                    f"Postfix in {config_dir} has no {parameter}: {asked.stderr.strip()}",
                    "Run `mailctl setup --apply` with the options of this host.",
                )
                continue
            self._postmap(check, config_dir, table.split(",")[0].strip(), keys[name], real[name])

    def _postmap(self, check: str, config_dir: str, table: str, key: str, real: bool) -> None:
        argv = ["postmap", "-c", config_dir, "-q", key, table]
        ran = health.run_as(argv, POSTFIX_USER, TIMEOUT)
        path = table.split(":", 1)[-1]
        if ran.status == 0:
            self.add(check, OK, f"{table} finds {key} (as the postfix user).")
            return
        said = ran.stderr.strip()
        if ran.status == 1 and not said:
            if not real:
                self.add(check, OK, f"{table} answers (no entry for the probe {key}).")
                return
            self.add(
                check,
                FAIL,
                f"{table} does not find {key}, which is in mailctl's database: "
                "Postfix reads another database.",
                f"Compare the database named in {path} with MAILCTL_DATABASE_URL, "
                "then run `mailctl setup --apply`.",
            )
            return
        if "permission denied" in said.lower():
            fix = (
                f"Postfix reads {path}, main.cf and the database as the postfix user: "
                "each must be readable by it (map files: group postfix, mode 0640, as "
                "`mailctl setup --apply` writes them) and every folder above them open "
                "to it (o+x)."
            )
        else:
            fix = (
                f"Postfix cannot query the database with what {path} says (host, user, "
                "password, database): run `mailctl setup --apply` so it matches "
                "MAILCTL_DATABASE_URL, and check that the database lets that user in."
            )
        self.add(check, FAIL, f"The lookup of {key} in {table} failed: {said}", fix)

    # --- Dovecot ----------------------------------------------------------------------

    def dovecot(self, samples: Samples) -> None:
        conf = str(self.cfg.dovecot_conf)
        lookups = {
            "dovecot.userdb": ["doveadm", "-c", conf, "user"],
            "dovecot.passdb": ["doveadm", "-c", conf, "auth", "lookup"],
        }
        if not self.running.get(DOVECOT):
            for name in lookups:
                self.add(name, SKIP, "Dovecot is not running: nothing to ask.")
            return
        user = samples.mailbox or PROBE_ADDRESS
        for name, argv in lookups.items():
            ran = health.run_as([*argv, user], None, TIMEOUT)
            said = (ran.stdout + ran.stderr).strip()
            if ran.status == 0 and samples.mailbox is not None:
                self.add(name, OK, f"Dovecot resolves {user}.")
            elif ran.status == DOVEADM_NO_USER and samples.mailbox is None:
                self.add(name, OK, f"Dovecot answers (no such user as the probe {user}).")
            elif ran.status == DOVEADM_NO_USER:
                self.add(
                    name,
                    FAIL,
                    f"Dovecot does not know {user}, which is in mailctl's database.",
                    f"Compare the database in {self.cfg.dovecot_sql_conf} with "
                    "MAILCTL_DATABASE_URL, then run `mailctl setup --apply`.",
                )
            else:
                reload = health.describe(self.commands[DOVECOT]["reload"])
                self.add(
                    name,
                    FAIL,
                    f"Dovecot's lookup of {user} failed (exit {ran.status}): {said}",
                    f"Dovecot cannot query the database with what {self.cfg.dovecot_sql_conf} "
                    "says: run `mailctl setup --apply` so it matches MAILCTL_DATABASE_URL, "
                    f"then `{reload}`; see {self.cfg.dovecot_log}.",
                )

    # --- TLS --------------------------------------------------------------------------

    def certificates(self, samples: Samples) -> None:
        host = self.cfg.hostname
        listeners = (
            ("tls.smtp", POSTFIX, self.cfg.smtp_port, "smtp"),
            ("tls.submission", POSTFIX, self.cfg.submission_port, "smtp"),
            ("tls.imaps", DOVECOT, self.cfg.imaps_port, None),
        )
        if samples.certificate_pem is None:
            self.add(
                "tls.certificate",
                FAIL,
                f"mailctl holds no certificate for {host}.",
                f"`mailctl cert upload FULLCHAIN KEY` or `mailctl cert issue {host}`.",
            )
            for name, *_ in listeners:
                self.add(name, SKIP, "There is no stored certificate to compare with.")
            return
        stored = tls.read_chain(samples.certificate_pem.encode("ascii"))
        left = tls.days_left(stored.not_after)
        if left < 0:
            self.add(
                "tls.certificate",
                FAIL,
                f"The certificate for {host} expired on {stored.not_after:%Y-%m-%d}.",
                f"`mailctl cert issue {host}` or upload a new one.",
            )
        else:
            self.add("tls.certificate", OK, f"The certificate for {host} has {left} days left.")
        address = "127.0.0.1" if self.cfg.listens_everywhere else self.cfg.listen_address
        for name, daemon, port, starttls in listeners:
            if not self.running.get(daemon):
                self.add(name, SKIP, f"{daemon} is not running: nothing serves port {port}.")
                continue
            self._probe(name, daemon, address, port, starttls, stored.fingerprint_sha256)

    def _probe(
        self, name: str, daemon: str, address: str, port: int, starttls: str | None, want: str
    ) -> None:
        where = f"{address}:{port}"
        try:
            seen = probe_certificate(
                address,
                port,
                starttls=starttls,
                timeout=TIMEOUT,
                server_name=self.cfg.hostname,
                targets=OWN_LISTENERS,
            )
        except MailctlError as exc:
            self.add(name, FAIL, exc.message, f"See {self._log(daemon)}.")
            return
        if seen.fingerprint_sha256.replace(":", "").lower() == want.lower():
            self.add(
                name,
                OK,
                f"{where} serves the certificate of {self.cfg.hostname} "
                f"({seen.days_left} days left).",
            )
            return
        reload = health.describe(self.commands[daemon]["reload"])
        self.add(
            name,
            FAIL,
            f"{where} serves another certificate ({seen.subject}, {seen.days_left} days "
            f"left) than the one mailctl holds for {self.cfg.hostname}.",
            f"Run `mailctl reconcile`, then reload {daemon}: `{reload}`.",
        )

    def _log(self, daemon: str) -> Path:
        return self.cfg.postfix_log if daemon == POSTFIX else self.cfg.dovecot_log


def run_checks(
    ctx: Context,
    cfg: StackConfig,
    *,
    strict: bool = True,
    config_files: Sequence[RenderedFile] = (),
) -> CheckReport:
    """Check the stack ``cfg`` describes against mailctl's database; never raises for a fault.

    ``strict`` (the default, `mailctl check`) counts a stopped or missing daemon as a
    failure; setup passes False, as it runs before the daemons are restarted.
    ``config_files`` are the daemons' configuration as setup would write it now.
    """
    checker = _Checker(ctx, cfg, strict)
    samples = checker.database()
    if config_files:
        check_files.config_files(checker, config_files)
    checker.daemons()
    checker.postfix_maps(samples)
    checker.dovecot(samples)
    if not samples.database_ok:
        for name in ("opendkim.files", "tls.files", "tls.certificate"):
            checker.add(name, SKIP, "mailctl's database does not answer: nothing to compare.")
        return checker.report()
    desired = _desired(ctx, checker.add)
    opendkim_dir = ctx.settings.opendkim_path
    dkim_files = [file for file in desired if file.path.is_relative_to(opendkim_dir)]
    check_files.rendered_files(checker, dkim_files, "opendkim.files", "OpenDKIM")
    check_files.dkim_keys(checker, cfg, dkim_files)
    tls_files = [file for file in desired if file.path.is_relative_to(ctx.settings.tls_path)]
    check_files.rendered_files(checker, tls_files, "tls.files", "TLS")
    checker.certificates(samples)
    return checker.report()


def _desired(ctx: Context, add: Callable[[str, str, str, str], None]) -> list[DesiredFile]:
    try:
        return desired_files(ctx)
    except MailctlError as exc:
        add("rendered.files", FAIL, exc.message, "Check MAILCTL_DATABASE_URL.")
        return []

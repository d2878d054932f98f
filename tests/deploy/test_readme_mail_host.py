"""The README's "Run it on a mail server" section, followed step by step on this machine.

The shell block of that section is read from README.md and each line is carried out in
order, as a new user would type it, with three differences a test host needs:

- every path under /etc, /var, /opt and /run lives below one folder of the test's own,
  itself outside /tmp, so OpenDKIM's safe-key check stays on as on a real host;
- `mailctl setup` is given `--root` and free ports, so the daemons never touch the
  machine's own Postfix and Dovecot and never need the well-known ports;
- the databases are the tests' own: a PostgreSQL cluster that checks passwords with
  scram-sha-256, and MariaDB users with passwords, each password full of characters that
  need quoting somewhere.

A line this module does not know fails the test: when the README changes, this changes
with it. After the last line, mail is delivered, read over IMAP and IMAPS, submitted with
a login, and its DKIM signature verified against the record `mailctl dns` printed.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

import dkim
import pytest

from tests.mailstack import mailclient
from tests.mailstack.mailclient import message
from tests.mailstack.stack import free_port, run, self_signed_pair, vmail_ids

pytestmark = [pytest.mark.mailstack, pytest.mark.slow]

CHECKOUT = Path(__file__).resolve().parents[2]
README = CHECKOUT / "README.md"
SECTION = "## Run it on a mail server"
# Folders a mail host keeps its files in; below the test's root here.
HOST_PREFIXES = ("/etc/", "/var/", "/opt/", "/run/", "/srv/")
COMMAND_TIMEOUT = 120.0
SERVER_START_TIMEOUT = 20.0
# Every character a password may hold that some parser quotes, escapes or splits on.
HOSTILE = " q\"uo'te\\ #$;=%@:/,{}&!x"


@dataclass(frozen=True)
class Line:
    """One command of the README's block, as written (comments and continuations joined)."""

    text: str
    heredoc: str | None = None

    @property
    def words(self) -> list[str]:
        return shlex.split(self.text, comments=True)


def shell_blocks() -> list[str]:
    """The ```sh blocks of the README's mail-server section, in order."""
    text = README.read_text(encoding="utf-8")
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)\n```", section, re.S)
    assert blocks, "the mail-server section of README.md has no ```sh block"
    return blocks


def parse_lines(block: str) -> list[Line]:
    """The commands of one block: comments dropped, continuations and heredocs joined."""
    raw = block.split("\n")
    lines: list[Line] = []
    index = 0
    while index < len(raw):
        line = raw[index]
        index += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.rstrip().endswith("\\") and index < len(raw):
            line = line.rstrip()[:-1] + " " + raw[index].strip()
            index += 1
        # A double-quoted string may go on over several lines (mariadb -e "...").
        while line.count('"') % 2 and index < len(raw):
            line = line + "\n" + raw[index]
            index += 1
        heredoc = re.search(r"<<-?\s*'?(\w+)'?", line)
        if heredoc:
            end = heredoc.group(1)
            body: list[str] = []
            while index < len(raw) and raw[index].strip() != end:
                body.append(raw[index])
                index += 1
            index += 1
            lines.append(Line(line, "\n".join(body) + "\n"))
        else:
            lines.append(Line(line))
    return lines


def readme_lines(kind: str) -> list[Line]:
    """The README's steps for a PostgreSQL host, or with its MariaDB steps in their place.

    The MariaDB block replaces the PostgreSQL database lines (createuser, createdb) where
    they stand, and its `setup --grants | mariadb` replaces the one piped into psql.
    """
    blocks = shell_blocks()
    main = parse_lines(blocks[0])
    if kind == "postgresql":
        return main
    assert len(blocks) > 1, "the README has no MariaDB steps"
    maria = parse_lines(blocks[1])
    create = [line for line in maria if line.words[0] in ("mariadb", "mysql")]
    grants = [line for line in maria if line not in create]
    steps: list[Line] = []
    for line in main:
        if line.text.startswith("sudo -u postgres create"):
            steps += create
            create = []
        elif "psql" in line.text:
            steps += grants
            grants = []
        else:
            steps.append(line)
    return steps


# --- databases that check passwords ----------------------------------------------------------


@dataclass
class DatabaseServer:
    """A database server the README's steps create roles and databases on."""

    kind: str  # "postgresql" or "mariadb"
    host: str
    port: int
    admin: Callable[[str, str | None], None]  # run SQL as the server's admin, in a database
    prefix: str  # makes this run's names unique on a shared server
    created_roles: list[str] = field(default_factory=list)
    created_databases: list[str] = field(default_factory=list)

    def name(self, readme_name: str) -> str:
        """The name this run uses for the README's role or database name."""
        return f"{self.prefix}{readme_name}"


# --- the host --------------------------------------------------------------------------------


@dataclass
class Host:
    """The state the README's lines build up, and how each line is carried out here."""

    root: Path
    server: DatabaseServer
    shell: dict[str, str] = field(default_factory=dict)  # the README's shell variables
    urlpw: str = ""  # the README's urlpw function
    env: dict[str, str] = field(default_factory=dict)
    mailctl: Path = CHECKOUT / ".venv" / "bin" / "mailctl"
    ports: dict[str, int] = field(default_factory=dict)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    mailbox_passwords: dict[str, str] = field(default_factory=dict)
    started: list[str] = field(default_factory=list)  # daemons, in the order they started
    cert_pem: bytes = b""  # the certificate the README's `cert upload` installed

    # -- paths -----------------------------------------------------------------------------
    def path(self, written: str) -> str:
        """Where a host path of the README lives in this test."""
        if written.startswith(HOST_PREFIXES):
            return str(self.root / written.lstrip("/"))
        return written

    def rewrite(self, text: str) -> str:
        """Every host path in ``text`` moved below the test's root."""
        pattern = "|".join(re.escape(prefix) for prefix in HOST_PREFIXES)
        return re.sub(rf"(?<![\w/.])(?:{pattern})", lambda m: f"{self.root}{m.group(0)}", text)

    @property
    def stack_root(self) -> Path:
        return self.root / "stack"

    @property
    def workdir(self) -> Path:
        return self.root / "work"

    # -- running mailctl ---------------------------------------------------------------------
    def run_env(self) -> dict[str, str]:
        """The environment of a command: the machine's, less any MAILCTL_*, plus the env file."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
        base["PATH"] = f"{self.mailctl.parent}:{base.get('PATH', '/usr/bin:/bin')}"
        return {**base, **self.env}

    def mailctl_run(self, args: list[str], stdin: str = "") -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.mailctl), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT,
            env=self.run_env(),
            cwd=self.workdir,
            check=False,
            # No controlling terminal: a password prompt reads standard input.
            start_new_session=True,
        )
        return done

    def setup_layout(self) -> list[str]:
        """What this test adds to `mailctl setup`: its own root and free ports."""
        if "smtp" not in self.ports:
            self.ports |= {
                name: free_port()
                for name in ("smtp", "submission", "imap", "imaps", "milter", "reinject")
            }
        return [
            *("--root", str(self.stack_root), "--listen", "127.0.0.1"),
            *("--smtp-port", str(self.ports["smtp"])),
            *("--submission-port", str(self.ports["submission"])),
            *("--imap-port", str(self.ports["imap"])),
            *("--imaps-port", str(self.ports["imaps"])),
            *("--milter-port", str(self.ports["milter"])),
            *("--reinject-port", str(self.ports["reinject"])),
        ]

    # -- the README's lines ------------------------------------------------------------------
    def carry_out(self, line: Line) -> None:
        """Do what ``line`` says, the way this test host does it; fail on a line unknown here."""
        text = line.text
        if line.heredoc is None and " && " in text:
            for part in text.split(" && "):
                self.carry_out(Line(part))
            return
        if line.heredoc is None and " | " in text and not text.startswith("echo "):
            left, right = text.split(" | ", 1)
            self.pipe(Line(left), Line(right))
            return
        words = line.words
        assignment = re.fullmatch(r"(\w+)=\$\(urlpw '([^']*)'\)\s*(#.*)?", text.strip())
        if text.startswith("echo ") and "debconf-set-selections" in text:
            return  # scripts/install-test-packages answers the same question
        if text.startswith("urlpw()"):
            self.urlpw = text
        elif assignment:
            password = hostile(assignment.group(2))
            done = subprocess.run(
                ["bash", "-c", f'{self.urlpw}\nurlpw "$1"', "urlpw", password],
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=True,
            )
            self.shell[assignment.group(1)] = done.stdout.strip()
        elif words[:2] == ["apt-get", "install"]:
            self.packages_installed([w for w in words[2:] if not w.startswith("-")])
        elif words[0] == "useradd" and words[-1] == "vmail":
            vmail_ids()
        elif words[:2] == ["git", "clone"]:
            assert words[-1] == "/opt/mailctl", text  # this checkout is that clone
        elif words[0].endswith("/scripts/bootstrap"):
            # scripts/test ran this checkout's scripts/bootstrap already.
            assert self.mailctl.is_file(), f"{self.mailctl} is missing"
        elif words[:2] == ["ln", "-s"]:
            assert Path(words[2]).name == "mailctl" == Path(words[3]).name, text
        elif words[:3] == ["sudo", "-u", "postgres"]:
            self.postgres_tool(words[3:])
        elif words[0] in ("mariadb", "mysql") and words[1] == "-e":
            self.server.admin(self.mariadb_sql(words[2]), None)
        elif words[:2] == ["install", "-d"]:
            mode = int(words[words.index("-m") + 1], 8) if "-m" in words else 0o755
            target = Path(self.path(words[-1]))
            target.mkdir(parents=True, exist_ok=True)
            target.chmod(mode)
        elif words[0] == "cat" and line.heredoc is not None:
            self.write_heredoc(words, line.heredoc)
        elif words[0] == "chmod":
            Path(self.path(words[2])).chmod(int(words[1], 8))
        elif text.startswith("set -a;"):
            self.load_env(Path(self.path(words[3].rstrip(";"))))
        elif words[0] == "mailctl":
            self.mailctl_line(words[1:], text)
        elif words[0] == "systemctl":
            self.systemctl(words[1:])
        else:
            pytest.fail(f"README step not known to this test, teach it: {text}")

    def pipe(self, left: Line, right: Line) -> None:
        """`mailctl setup --grants | psql ...` or `| mariadb DB`: the SQL, run as the admin."""
        assert left.words[0] == "mailctl", left.text
        done = self.mailctl_run(left.words[1:])
        assert done.returncode == 0, f"`{left.text}`: {done.stderr}"
        words = right.words
        if words[:3] == ["sudo", "-u", "postgres"]:
            words = words[3:]
        assert words[0] in ("psql", "mariadb", "mysql"), right.text
        database = self.server.name(words[-1])
        self.server.admin(done.stdout, database)
        for role in re.findall(r"CREATE (?:ROLE|USER)(?: IF NOT EXISTS)? ([^\s;]+)", done.stdout):
            self.server.created_roles.append(role)

    def mariadb_sql(self, sql: str) -> str:
        """The README's SQL with this run's names and passwords."""
        for literal in set(re.findall(r"'([\w-]+-password)'", sql)):
            escaped = hostile(literal).replace("\\", "\\\\").replace("'", "\\'")
            sql = sql.replace(f"'{literal}'", f"'{escaped}'")
        for name in ("mailctl",):
            sql = re.sub(rf"(?<![\w-]){name}(?![\w-])", self.server.name(name), sql)
        self.server.created_databases += re.findall(r"CREATE DATABASE (\w+)", sql)
        self.server.created_roles += [
            f"{user}@{host}" for user, host in re.findall(r"CREATE USER ('[^']+')@('[^']*')", sql)
        ]
        return sql

    def packages_installed(self, packages: list[str]) -> None:
        if self.server.kind == "mariadb":
            # The README: for MariaDB use postfix-mysql and dovecot-mysql (and a MariaDB).
            swap = {"postfix-pgsql": "postfix-mysql", "dovecot-pgsql": "dovecot-mysql"}
            packages = [swap.get(p, p) for p in packages if p != "postgresql"]
        missing = []
        for package in packages:
            done = run(["dpkg-query", "-W", "-f=${Status}", package])
            if "install ok installed" not in done.stdout:
                missing.append(package)
        assert not missing, f"the README installs {missing}; scripts/install-test-packages must too"

    def write_heredoc(self, words: list[str], body: str) -> None:
        assert words[1] == ">", words
        quoted = re.search(r"<<-?\s*'", " ".join(words)) is not None
        expanded = body
        if not quoted:
            done = subprocess.run(
                ["bash", "-c", f"cat <<END\n{body}END\n"],
                capture_output=True,
                text=True,
                timeout=COMMAND_TIMEOUT,
                check=True,
                env={**os.environ, **self.shell},
            )
            expanded = done.stdout
        content = "\n".join(self.env_line(line) for line in expanded.splitlines()) + "\n"
        target = Path(self.path(words[2]))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)

    def env_line(self, line: str) -> str:
        """A settings line of the README, with this host's paths, database and API port."""
        if "=" not in line or line.lstrip().startswith("#"):
            return line
        key, value = line.split("=", 1)
        if "://" in value and key.endswith("DATABASE_URL"):
            return f"{key}={self.database_url(value)}"
        return f"{key}={self.rewrite(value)}"

    def database_url(self, written: str) -> str:
        """The README's URL on this test's server and names; the password as the README made it."""
        parts = urlsplit(written)
        scheme = parts.scheme
        if self.server.kind == "mariadb":
            scheme = "mysql+pymysql"  # the README: "a mysql+pymysql:// URL" for MariaDB
        user = parts.username or ""
        password = written.split("://", 1)[1].rsplit("@", 1)[0].split(":", 1)[1]
        database = parts.path.lstrip("/")
        return (
            f"{scheme}://{self.server.name(user)}:{password}@{self.server.host}:"
            f"{self.server.port}/{self.server.name(database)}"
        )

    def load_env(self, path: Path) -> None:
        for line in path.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                self.env[key.strip()] = value
        # The API of this host listens on a free port of 127.0.0.1.
        self.ports.setdefault("api", free_port())
        self.env["MAILCTL_HOST"] = "127.0.0.1"
        self.env["MAILCTL_PORT"] = str(self.ports["api"])

    # -- databases -----------------------------------------------------------------------------

    def postgres_tool(self, words: list[str]) -> None:
        """createuser / createdb / psql, as the postgres account runs them."""
        if self.server.kind != "postgresql":
            return  # the MariaDB lines of the README do the same for MariaDB
        tool, args = words[0], words[1:]
        if tool == "createuser":
            assert "--pwprompt" in args, "a role without a password: the daemons could not log in"
            name = args[-1]
            # What the admin types at the prompt: the password the README puts in the URL.
            password = hostile(f"{name}-password")
            role = self.server.name(name)
            self.server.admin(
                f"CREATE ROLE \"{role}\" LOGIN PASSWORD '{_sql_text(password)}'", None
            )
            self.server.created_roles.append(role)
        elif tool == "createdb":
            owner = args[args.index("--owner") + 1]
            database = self.server.name(args[-1])
            self.server.admin(
                f'CREATE DATABASE "{database}" OWNER "{self.server.name(owner)}"', None
            )
            self.server.created_databases.append(database)
        else:
            pytest.fail(f"README runs {tool} as postgres; teach this test what it does")

    # -- mailctl -------------------------------------------------------------------------------
    def mailctl_line(self, args: list[str], text: str) -> None:
        stdin = ""
        if args[:2] == ["cert", "upload"]:
            hostname = self.env["MAILCTL_MAIL_HOSTNAME"]
            cert_pem, key_pem = self_signed_pair(hostname)
            (self.workdir / args[2]).write_bytes(cert_pem)
            (self.workdir / args[3]).write_bytes(key_pem)
            self.cert_pem = cert_pem
        if args[0] == "setup":
            args = [*args, *self.setup_layout()]
            if "--systemd" in args:
                args += ["--systemd-dir", str(self.root / "etc" / "systemd" / "system")]
                args += ["--env-file", self.path("/etc/mailctl/env")]
        if args[:2] == ["domain", "add"] and "--user" in args:
            user = args[args.index("--user") + 1]
            password = f"mailbox {user} {HOSTILE}"
            self.mailbox_passwords[user] = password
            stdin = f"{password}\n{password}\n"
        done = self.mailctl_run(args, stdin)
        if args[0] == "setup":
            # The dry run shows every file, each password masked, in whatever form it takes.
            for secret in (HOSTILE, quote(HOSTILE, safe="")):
                assert secret not in done.stdout + done.stderr, f"`{text}` shows a password"
        assert done.returncode == 0, (
            f"`{text}` exited {done.returncode}\n--- stdout\n{done.stdout}\n"
            f"--- stderr\n{done.stderr}\n{self.logs()}"
        )

    # -- systemd ---------------------------------------------------------------------------------
    def systemctl(self, args: list[str]) -> None:
        if args[0] == "restart" and set(args[1:]) == {"postfix", "dovecot", "opendkim"}:
            self.start_daemons()
        elif args == ["daemon-reload"]:
            units = self.root / "etc" / "systemd" / "system"
            assert (units / "mailctl.service").is_file()
            assert (units / "mailctl-agent.service").is_file()
        elif args[:2] == ["enable", "--now"]:
            for unit in args[2:]:
                self.start_unit(unit)
        else:
            pytest.fail(f"README runs systemctl {shlex.join(args)}; teach this test what it does")

    def settings_env(self) -> dict[str, str]:
        return {k: v for k, v in self.env.items() if k.startswith("MAILCTL_")}

    def stack_config(self):  # type: ignore[no-untyped-def]
        """The configuration `mailctl setup` wrote, computed again from the same settings."""
        from mailctl.config import Settings
        from mailctl.services import setup

        values = {k.removeprefix("MAILCTL_").lower(): v for k, v in self.settings_env().items()}
        settings = Settings(**values)
        options = setup.recorded_options(settings)
        assert options is not None, "`mailctl setup --apply` recorded no layout"
        return setup.stack_config(settings, options)

    def start_daemons(self) -> None:
        from mailctl.host.stack import stack_commands

        commands = stack_commands(self.stack_config())
        for daemon in ("postfix", "dovecot", "opendkim"):
            output = self.stack_root / "log" / f"{daemon}.out"
            with output.open("ab") as sink:
                done = subprocess.run(
                    commands[daemon]["start"],
                    stdin=subprocess.DEVNULL,
                    stdout=sink,
                    stderr=sink,
                    timeout=COMMAND_TIMEOUT,
                    check=False,
                )
            self.started.append(daemon)
            assert done.returncode == 0, f"{daemon} did not start\n{self.logs()}"
        for name in ("smtp", "submission", "imap", "imaps", "milter"):
            wait_for_port(self.ports[name], f"{name}\n{self.logs()}")

    def stop_daemons(self) -> list[str]:
        from mailctl.host.stack import stack_commands

        problems: list[str] = []
        if not self.started:
            return problems
        commands = stack_commands(self.stack_config())
        for daemon in reversed(self.started):
            done = run(commands[daemon]["stop"])
            if done.returncode != 0:
                problems.append(f"{daemon} stop exited {done.returncode}: {done.stderr}")
        return problems

    def start_unit(self, unit: str) -> None:
        """Run a unit's ExecStart with its EnvironmentFile, as systemd would."""
        path = self.root / "etc" / "systemd" / "system" / f"{unit}.service"
        fields = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCTL_")}
        for line in Path(fields["EnvironmentFile"]).read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                env[key] = value
        env["MAILCTL_HOST"] = "127.0.0.1"
        env["MAILCTL_PORT"] = str(self.ports["api"])
        log = (self.root / f"{unit}.log").open("ab")
        process = subprocess.Popen(
            shlex.split(fields["ExecStart"]),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd="/",
            start_new_session=True,
        )
        log.close()
        self.processes.append(process)
        if unit == "mailctl":
            wait_for_port(self.ports["api"], f"the API of {unit}.service\n{self.unit_logs()}")
        else:
            time.sleep(0.5)
            assert process.poll() is None, f"{unit} exited at once\n{self.unit_logs()}"

    def stop_units(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()

    # -- what a failure shows ----------------------------------------------------------------
    def logs(self) -> str:
        parts = []
        for log in sorted((self.stack_root / "log").glob("*")):
            text = log.read_text(errors="replace")[-3000:]
            parts.append(f"--- {log.name} ---\n{text}")
        return "\n".join(parts)

    def unit_logs(self) -> str:
        return "\n".join(
            f"--- {log.name} ---\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.root.glob("*.log"))
        )

    # -- mail, as a client sees it -------------------------------------------------------------
    @property
    def imap_port(self) -> int:
        return self.ports["imap"]


def hostile(literal: str) -> str:
    """The password this test uses where the README writes ``literal``."""
    return f"{literal}{HOSTILE}"


def _sql_text(value: str) -> str:
    """``value`` inside a single-quoted SQL string (standard_conforming_strings on)."""
    return value.replace("'", "''")


def wait_for_port(port: int, what: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"nothing listens on {port} after {SERVER_START_TIMEOUT:.0f}s: {what}")


# --- the test ----------------------------------------------------------------------------------


def fetch(host: Host, address: str, password: str, subject: str, *, imaps: bool) -> bytes:
    """Log in over IMAPS, or IMAP after STARTTLS, and return the message with ``subject``."""
    import imaplib

    context = tls_context(host)
    deadline = time.monotonic() + mailclient.DELIVERY_TIMEOUT
    if imaps:
        imap = imaplib.IMAP4_SSL("127.0.0.1", host.ports["imaps"], ssl_context=context)
    else:
        imap = imaplib.IMAP4("127.0.0.1", host.ports["imap"], timeout=30)
        imap.starttls(ssl_context=context)
    with imap:
        imap.login(address, password)
        while True:
            status, answer = imap.select("INBOX")
            assert status == "OK", f"SELECT INBOX: {answer}\n{host.logs()}"
            status, data = imap.search(None, "SUBJECT", f'"{subject}"')
            assert status == "OK"
            if data[0].split():
                status, parts = imap.fetch(data[0].split()[-1], "(RFC822)")
                first = parts[0]
                assert isinstance(first, tuple)
                return bytes(first[1])
            if time.monotonic() > deadline:
                pytest.fail(f"{subject!r} not delivered in time\n{host.logs()}")
            time.sleep(0.2)


def tls_context(host: Host):  # type: ignore[no-untyped-def]
    import ssl

    return ssl.create_default_context(cadata=host.cert_pem.decode("ascii"))


def dkim_records(zone: str) -> dict[str, str]:
    """The DKIM TXT values of `mailctl dns --zone` output, by owner name, strings joined."""
    found = {}
    for line in zone.splitlines():
        if line.startswith(";") or "._domainkey." not in line or "\tTXT\t" not in line:
            continue
        name = line.split()[0]
        found[name] = "".join(re.findall(r'"([^"]*)"', line))
    return found


def follow_readme(host: Host) -> None:
    for line in readme_lines(host.server.kind):
        host.carry_out(line)


def check_the_daemons_role(host: Host) -> None:
    """The daemons log in as the role the README made for them, on the server it named."""
    scheme = {"postgresql": "postgresql+psycopg://", "mariadb": "mysql+pymysql://"}
    assert host.env["MAILCTL_DATABASE_URL"].startswith(scheme[host.server.kind])
    role = host.server.name("mailctl_daemons")
    owner = host.server.name("mailctl")
    for name in ("domains", "mailboxes", "aliases"):
        text = (host.stack_root / "postfix" / "etc" / f"sql-virtual-{name}.cf").read_text()
        assert role in text
        assert f"{owner}:" not in text and f"user = {owner}\n" not in text


def check_mail_flows(host: Host) -> None:
    """Mail for the README's first mailbox arrives, reads back, and leaves signed."""
    [(address, password)] = host.mailbox_passwords.items()
    domain = address.split("@", 1)[1]
    with smtplib.SMTP("127.0.0.1", host.ports["smtp"], timeout=30) as smtp:
        assert smtp.send_message(message("bob@elsewhere.test", address, "from outside")) == {}
    raw = fetch(host, address, password, "from outside", imaps=False)
    assert b"Body of from outside." in raw
    assert b"Body of from outside." in fetch(host, address, password, "from outside", imaps=True)

    zone = host.mailctl_run(["dns", domain, "--zone"])
    assert zone.returncode == 0, zone.stderr
    records = dkim_records(zone.stdout)
    assert records, f"`mailctl dns {domain} --zone` printed no DKIM record:\n{zone.stdout}"

    with smtplib.SMTP("127.0.0.1", host.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=tls_context(host))
        smtp.login(address, password)
        smtp.send_message(message(address, address, "signed by the host"))
    raw = fetch(host, address, password, "signed by the host", imaps=False)

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        value = records.get(name.decode())
        return value.encode() if value is not None else None

    assert b"DKIM-Signature:" in raw, f"submitted mail left unsigned\n{host.logs()}"
    assert dkim.verify(raw, dnsfunc=dns), "the DKIM signature does not verify against `mailctl dns`"


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_readme_mail_server_section(kind: str, request: pytest.FixtureRequest) -> None:
    """Every line of "Run it on a mail server", then mail in, out, signed, read back."""
    server: DatabaseServer = request.getfixturevalue(f"{kind}_with_passwords")
    # Outside /tmp, in a folder only root may write to, as /etc and /var are.
    base = Path("/var/lib/mailctl-tests")
    base.mkdir(mode=0o755, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="readme-", dir=base))
    root.chmod(0o755)
    host = Host(root=root, server=server)
    host.workdir.mkdir()
    try:
        follow_readme(host)
        check_the_daemons_role(host)
        check_mail_flows(host)
    finally:
        host.stop_units()
        problems = host.stop_daemons()
        shutil.rmtree(root, ignore_errors=True)
        assert not problems, problems

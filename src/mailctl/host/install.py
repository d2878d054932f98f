"""Putting a rendered stack on a host: folders, the daemons' tools, units, syslog, pids."""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from mailctl.errors import HostStateError
from mailctl.host import command
from mailctl.host.fs import ensure_dir
from mailctl.host.stack import RenderedFile, RequiredDir

SYSTEMD = "systemd"
OUTPUT_TAIL_CHARS = 1500


class CommandRunner(Protocol):
    """How setup finds and runs the daemons' tools (a fake in unit tests)."""

    def which(self, name: str) -> str | None:
        """The path of an executable, or None if it is not installed."""

    def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        """Run ``argv`` without a shell; return its exit status and its output."""


class SystemRunner:
    """The real thing: PATH lookups and subprocesses bounded by a timeout."""

    def which(self, name: str) -> str | None:
        """The path of an executable, or None if it is not installed."""
        return shutil.which(name)

    def run(self, argv: Sequence[str], timeout: float) -> tuple[int, str]:
        """Run ``argv`` without a shell; a timeout or a missing binary is a failure."""
        ran = command.run(argv, timeout)
        return ran.status, command.tail(ran.output, OUTPUT_TAIL_CHARS)


def lookup_id(value: str | int | None, table: str) -> int | None:
    if value is None or isinstance(value, int):
        return value
    try:
        if table == "user":
            return pwd.getpwnam(value).pw_uid
        return grp.getgrnam(value).gr_gid
    except KeyError:
        raise HostStateError(
            f"There is no {table} {value} on this host: install Postfix, Dovecot and "
            "OpenDKIM first."
        ) from None


def make_dirs(directories: Sequence[RequiredDir]) -> list[Path]:
    created: list[Path] = []
    for required in directories:
        uid = lookup_id(required.owner, "user")
        gid = lookup_id(required.group, "group")
        existed = required.path.is_dir()
        # A folder the stack merely needs (/etc, say) is created if missing, never changed;
        # one a daemon must own (its data folder, the mail root) is set right every time.
        if existed and uid is None and gid is None:
            continue
        ensure_dir(required.path, required.mode)
        try:
            os.chown(required.path, 0 if uid is None else uid, 0 if gid is None else gid)
        except OSError as exc:
            raise HostStateError(f"Cannot hand {required.path} over: {exc.strerror}.") from exc
        if not existed:
            created.append(required.path)
    return created


# Where syslog(3) sends messages: a daemon logging only through syslog (OpenDKIM) is
# silent on a host without it, as in many containers.
SYSLOG_SOCKET = Path("/dev/log")


def has_syslog(socket_path: Path = SYSLOG_SOCKET) -> bool:
    """Whether something listens where syslog(3) writes (a socket, or a link to one)."""
    try:
        return stat.S_ISSOCK(socket_path.stat().st_mode)
    except OSError:
        return False


def is_running(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def systemd_units(
    directory: Path, env_file: Path, mailctl_command: Sequence[str]
) -> list[RenderedFile]:
    """Units that run the API and the agent, reading their settings from the env file."""
    command = shlex.join(mailctl_command)
    units = {
        "mailctl.service": ("mailctl HTTP API", f"{command} serve"),
        "mailctl-agent.service": ("mailctl agent: reconcile and renew", f"{command} agent"),
    }
    files = []
    for unit, (description, exec_start) in units.items():
        content = (
            "# Rendered by mailctl setup; edits here are overwritten.\n"
            "[Unit]\n"
            f"Description={description}\n"
            # Ordering only: a unit that does not exist on this host is ignored.
            "After=network-online.target postgresql.service mariadb.service\n"
            "Wants=network-online.target\n"
            "\n"
            "[Service]\n"
            "Type=simple\n"
            f"EnvironmentFile={env_file}\n"
            f"ExecStart={exec_start}\n"
            # Root: mailctl writes key files for opendkim and maildirs for vmail, and
            # runs the daemons' reload commands.
            "User=root\n"
            "Restart=on-failure\n"
            "RestartSec=5\n"
            "\n"
            "[Install]\n"
            "WantedBy=multi-user.target\n"
        )
        files.append(RenderedFile(directory / unit, content, 0o644, SYSTEMD))
    return files

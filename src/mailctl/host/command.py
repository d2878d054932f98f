"""Running a host command: no shell, no input, a timeout, both outputs captured.

Every command mailctl runs on the host (a daemon's check or reload, a probe as a daemon's
user) goes through ``run``. A command that cannot start or does not finish in time is
not an exception but a result that says so, with a message fit for an operator.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

# Exit statuses a shell would report: timeout(1)'s for a command stopped after its time,
# and "command not found" for one that could not start.
TIMED_OUT_STATUS = 124
NOT_RUNNABLE_STATUS = 127


@dataclass(frozen=True)
class Ran:
    """What a command did: its exit status and what it printed (decoded, never raising).

    ``timed_out``: it was stopped after its timeout (status 124); ``started`` is False when
    it could not be run at all (status 127). In both cases ``stderr`` ends with why.
    """

    status: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    started: bool = True

    @property
    def ok(self) -> bool:
        """True when the command ran to its end and exited 0."""
        return self.started and not self.timed_out and self.status == 0

    @property
    def output(self) -> str:
        """Both outputs, standard output first."""
        return self.stdout + self.stderr


def tail(text: str, chars: int) -> str:
    """The last ``chars`` characters of ``text``, for a message of bounded size."""
    return text[-chars:] if chars > 0 else ""


def _decoded(raw: bytes | str | None) -> str:
    if raw is None:
        return ""
    if isinstance(raw, str):
        return raw
    return raw.decode("utf-8", errors="replace")


def _identity(user: str | None) -> dict[str, object]:
    # Only root can change user; anyone else runs the command as itself.
    if user is None or os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam(user)
    groups = [group.gr_gid for group in grp.getgrall() if user in group.gr_mem]
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": groups}


def run(
    argv: Sequence[str],
    timeout: float,
    *,
    user: str | None = None,
    cwd: str | None = None,
) -> Ran:
    """Run ``argv`` without a shell and wait at most ``timeout`` seconds for it.

    With ``user`` (and when running as root), the command runs as that user with its
    groups, the way a daemon reads its files after dropping privileges.
    """
    try:
        done = subprocess.run(  # type: ignore[call-overload]
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
            **_identity(user),
        )
    except subprocess.TimeoutExpired as exc:
        said = _decoded(exc.stderr)
        return Ran(
            TIMED_OUT_STATUS,
            _decoded(exc.stdout),
            said
            + ("\n" if said and not said.endswith("\n") else "")
            + f"no answer within {timeout:g} s",
            timed_out=True,
        )
    except OSError as exc:
        # A missing or non-executable binary is a result to report, not a crash.
        return Ran(NOT_RUNNABLE_STATUS, "", str(exc), started=False)
    return Ran(int(done.returncode), _decoded(done.stdout), _decoded(done.stderr))

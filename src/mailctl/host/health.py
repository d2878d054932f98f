"""Probes of a running mail host: commands run as a daemon's user, and OpenDKIM's key rules."""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import shlex
import stat
from collections.abc import Sequence
from pathlib import Path

from mailctl.host import command
from mailctl.host.command import Ran

OUTPUT_TAIL_CHARS = 1500
SUPERUSER = "root"


def run_as(argv: Sequence[str], user: str | None, timeout: float) -> Ran:
    """Run ``argv`` without a shell as ``user`` (its groups too), or as ourselves if None.

    A daemon reads its files after dropping privileges, so a lookup run as root proves
    nothing about what the daemon can read. Only root can change user; anyone else runs
    the command as itself. Both outputs are cut to their last characters.
    """
    ran = command.run(argv, timeout, user=user, cwd="/")
    return dataclasses.replace(
        ran,
        stdout=command.tail(ran.stdout, OUTPUT_TAIL_CHARS),
        stderr=command.tail(ran.stderr, OUTPUT_TAIL_CHARS),
    )


def drift(
    path: Path, content: bytes, mode: int, uid: int | None = None, gid: int | None = None
) -> str | None:
    """How ``path`` differs from what it should be (content, mode, owner), or None."""
    try:
        info = path.stat()
        found = path.read_bytes()
    except FileNotFoundError:
        return f"{path} is missing"
    except OSError as exc:
        return f"{path}: {exc.strerror}"
    if found != content:
        return f"{path} differs"
    if info.st_mode & 0o7777 != mode:
        return f"{path} has mode {info.st_mode & 0o7777:04o}, not {mode:04o}"
    if (uid is not None and info.st_uid != uid) or (gid is not None and info.st_gid != gid):
        return f"{path} belongs to {info.st_uid}:{info.st_gid}"
    return None


def describe(argv: Sequence[str]) -> str:
    """A command as a shell would show it, for a message to copy."""
    return shlex.join(argv)


def user_exists(user: str) -> bool:
    """True when the host has an account called ``user``."""
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


# --- OpenDKIM's RequireSafeKeys -------------------------------------------------------------
#
# OpenDKIM, running as its own user, resolves the key file's real path and looks at every
# node from / down to the file. A folder fails if others may write to it (the sticky bit
# does not help: /tmp fails), if its group may write and that group holds anyone but
# OpenDKIM's user and root, or if it is writable by an owner that is neither. Once a folder
# is closed to group and others (no x bit for them), nothing below it is looked at. The
# file itself must belong to root or OpenDKIM's user, must not be readable or writable by
# others, and may be readable by its group only if the group holds no one else. A refused
# key makes OpenDKIM answer every message to sign with a temporary failure.


def _group_has_others(gid: int, me: pwd.struct_passwd) -> str | None:
    """Someone other than ``me`` and root in group ``gid`` (as member or primary group)."""
    for entry in pwd.getpwall():
        if entry.pw_gid == gid and entry.pw_uid not in (me.pw_uid, 0):
            return entry.pw_name
    try:
        members = grp.getgrgid(gid).gr_mem
    except KeyError:
        return None
    for member in members:
        if member not in (me.pw_name, SUPERUSER):
            return member
    return None


def folder_problem(path: Path, info: os.stat_result, me: pwd.struct_passwd) -> str | None:
    """Why OpenDKIM, running as ``me``, distrusts a folder above a key, or None."""
    mode = info.st_mode
    if mode & stat.S_IWOTH:
        return f"{path} can be written by any user"
    if mode & stat.S_IWGRP:
        other = _group_has_others(info.st_gid, me)
        if other is not None:
            return f"{path} can be written by its group, which holds {other}"
    if mode & stat.S_IWUSR and info.st_uid not in (0, me.pw_uid):
        return f"{path} belongs to uid {info.st_uid}, neither root nor {me.pw_name}"
    return None


def file_problem(path: Path, info: os.stat_result, me: pwd.struct_passwd) -> str | None:
    """Why OpenDKIM, running as ``me``, distrusts a key file, or None."""
    mode = info.st_mode
    if info.st_uid not in (0, me.pw_uid):
        return f"{path} belongs to uid {info.st_uid}, neither root nor {me.pw_name}"
    if mode & (stat.S_IRGRP | stat.S_IWGRP):
        other = _group_has_others(info.st_gid, me)
        if other is not None:
            return f"{path} can be read by its group, which holds {other}"
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        return f"{path} can be read or written by any user"
    return None


def unsafe_key_reason(path: Path, user: str) -> str | None:
    """Why OpenDKIM running as ``user`` with RequireSafeKeys would refuse this key, or None."""
    me = pwd.getpwnam(user)
    real = Path(os.path.realpath(path))
    nodes = [*reversed(real.parents), real]
    for node in nodes:
        try:
            info = node.stat()
        except OSError as exc:
            return f"{node}: {exc.strerror}"
        if stat.S_ISDIR(info.st_mode):
            problem = folder_problem(node, info, me)
            if problem is not None:
                return problem
            if not info.st_mode & (stat.S_IXGRP | stat.S_IXOTH):
                return None
        elif stat.S_ISREG(info.st_mode):
            return file_problem(node, info, me)
        else:
            return f"{node} is not a regular file"
    return None


def readable_by(path: Path, user: str, timeout: float = 10.0) -> bool:
    """True when ``user`` can open ``path`` for reading (checked as that user when root)."""
    return run_as(["test", "-r", str(path)], user, timeout).status == 0

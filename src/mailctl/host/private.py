"""Keeping mailctl's own files private: the data folder 0700, the SQLite files 0600.

The SQLite file holds the token signing key, DKIM and TLS private keys and the admins'
hashes; a copy readable by any local account lets that account forge an admin token.
"""

from __future__ import annotations

import grp
import os
import stat
from pathlib import Path

from mailctl.domain.numbers import ascii_digits
from mailctl.errors import HostStateError, InvalidInputError
from mailctl.host.fs import ensure_dir

# Files mailctl creates are for mailctl alone unless a mode says otherwise.
PRIVATE_UMASK = 0o077
DATA_DIR_MODE = 0o700
DATABASE_MODE = 0o600
SHARED_DATABASE_MODE = 0o640
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def group_id(group: str) -> int:
    """The id of a group given by name or number; InvalidInputError if there is none."""
    if ascii_digits(group):
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError as exc:
        raise InvalidInputError(f"There is no group {group!r} on this host.") from exc


def _repair(path: Path, mode: int, what: str, gid: int | None = None) -> str | None:
    """Give ``path`` at most ``mode`` (and group ``gid``); a notice if it had to change."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HostStateError(f"Cannot check {what} {path}: {exc.strerror}.") from exc
    if stat.S_ISLNK(info.st_mode):
        raise HostStateError(f"{what.capitalize()} {path} is a symbolic link; refusing to use it.")
    current = stat.S_IMODE(info.st_mode)
    wrong_group = gid is not None and info.st_gid != gid
    if current & ~mode == 0 and not wrong_group:
        return None
    try:
        if gid is not None and wrong_group:
            os.chown(path, -1, gid)
        os.chmod(path, mode)
    except OSError as exc:
        raise HostStateError(
            f"{what.capitalize()} {path} is open to others ({current:04o}) and cannot be "
            f"made {mode:04o}: {exc.strerror}. Fix it, or run mailctl as its owner."
        ) from exc
    return f"{what.capitalize()} {path} was {current:04o}; it is now {mode:04o}."


def secure_data_dir(
    data_dir: Path,
    sqlite_file: Path | None,
    *,
    database_group: str | None = None,
    create_database: bool = False,
) -> list[str]:
    """Create or repair the data folder (0700) and the SQLite files (0600); say what changed.

    ``database_group`` names the group of daemons that read the SQLite file (Postfix and
    Dovecot on a mail host using SQLite): its files are then 0640 with that group. With
    ``create_database`` a missing SQLite file is created empty with its mode, so it is
    never more open, not even for a moment.
    """
    notices: list[str] = []
    if not data_dir.is_dir():
        if not create_database:
            return notices  # nothing to make private yet; only `mailctl init` creates it
        # Missing parents get 0755: the mail root or the daemons' folders may sit beside
        # the data folder, below the same new parent, and the daemons must walk through it.
        ensure_dir(data_dir, DATA_DIR_MODE)
    notice = _repair(data_dir, DATA_DIR_MODE, "the data folder")
    if notice:
        notices.append(notice)
    if sqlite_file is None:
        return notices
    gid = group_id(database_group) if database_group else None
    mode = SHARED_DATABASE_MODE if gid is not None else DATABASE_MODE
    if create_database and not sqlite_file.exists():
        try:
            if not sqlite_file.parent.is_dir():
                ensure_dir(sqlite_file.parent, DATA_DIR_MODE)
            fd = os.open(sqlite_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
            os.close(fd)
        except FileExistsError:
            pass
        except OSError as exc:
            raise HostStateError(
                f"Cannot create the database file {sqlite_file}: {exc.strerror}."
            ) from exc
    for suffix in SQLITE_COMPANIONS:
        path = sqlite_file.with_name(sqlite_file.name + suffix)
        notice = _repair(path, mode, "the database file", gid)
        if notice:
            notices.append(notice)
    return notices

"""Checking, at the start of a command, that mailctl's data stays readable by mailctl alone."""

from __future__ import annotations

import os

from mailctl.config import Settings
from mailctl.host.private import PRIVATE_UMASK, secure_data_dir
from mailctl.storage.database import sqlite_file


def secure_files(settings: Settings, *, create_database: bool = False) -> list[str]:
    """Make the data folder 0700 and the SQLite files 0600 (or 0640 for a database group).

    Returns one line per repair, for the command to show; raises HostStateError where a
    repair is impossible (a file of another owner, a symbolic link).
    """
    return secure_data_dir(
        settings.data_dir,
        sqlite_file(settings.database_url),
        database_group=settings.database_group,
        create_database=create_database,
    )


def use_private_umask() -> None:
    """Files and folders this process creates without an explicit mode are its own alone."""
    os.umask(PRIVATE_UMASK)

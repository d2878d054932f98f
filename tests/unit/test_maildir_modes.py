"""Under mailctl's umask 077 the mail folders stay walkable by the mail user."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailctl.host.maildir import Maildirs


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def private_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.usefixtures("private_umask")
def test_mail_root_and_domain_folders(tmp_path: Path) -> None:
    """A new mail root is 0755, a domain folder 0750, also when a restore makes them."""
    maildirs = Maildirs(tmp_path / "mail", tmp_path / "trash")
    mailbox = maildirs.create_mailbox("example.com", "alice")
    assert _mode(tmp_path / "mail") == 0o755
    assert _mode(tmp_path / "mail" / "example.com") == 0o750
    entry = maildirs.move_to_trash("mailbox", "alice@example.com", mailbox, {})
    (tmp_path / "mail" / "example.com").rmdir()
    maildirs.restore_from_trash(entry, mailbox)
    assert _mode(tmp_path / "mail" / "example.com") == 0o750
    assert mailbox.is_dir()

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


@pytest.mark.parametrize("mask", [0o077, 0o277])
def test_many_maildirs_at_once_get_the_same_modes(tmp_path: Path, mask: int) -> None:
    """create_mailboxes makes what create_mailbox makes, whatever the umask; existing
    maildirs are kept and not reported as made."""
    maildirs = Maildirs(tmp_path / "mail", tmp_path / "trash")
    maildirs.create_mailbox("example.com", "old")
    (tmp_path / "mail" / "example.com" / "old" / "new" / "1").write_bytes(b"mail")
    old = os.umask(mask)
    try:
        made = maildirs.create_mailboxes("example.com", ["a", "old", "b"])
    finally:
        os.umask(old)
    assert made == ["a", "b"]
    assert _mode(tmp_path / "mail" / "example.com") == 0o750
    for local in ("a", "b"):
        assert _mode(tmp_path / "mail" / "example.com" / local) == 0o700
        for sub in ("cur", "new", "tmp"):
            assert _mode(tmp_path / "mail" / "example.com" / local / sub) == 0o700
    assert (tmp_path / "mail" / "example.com" / "old" / "new" / "1").read_bytes() == b"mail"


def test_many_maildirs_never_follow_a_planted_link(tmp_path: Path) -> None:
    """A symlink where a maildir should be is refused, and what was made is removed."""
    from mailctl.errors import HostStateError

    maildirs = Maildirs(tmp_path / "mail", tmp_path / "trash")
    maildirs.create_mailbox("example.com", "first")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (tmp_path / "mail" / "example.com" / "b").symlink_to(outside)
    with pytest.raises(HostStateError):
        maildirs.create_mailboxes("example.com", ["a", "b", "c"])
    assert sorted(p.name for p in (tmp_path / "mail" / "example.com").iterdir()) == ["b", "first"]
    assert list(outside.iterdir()) == []

"""The one apply-with-rollback engine, on a real folder: what it writes it can put back."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailctl.errors import HostStateError
from mailctl.host.changes import FileChanges
from mailctl.host.plan import read_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_put_back_restores_old_bytes_and_mode_and_removes_new_files(tmp_path: Path) -> None:
    """After put_back, an overwritten file is as it was and a created one is gone."""
    old = tmp_path / "main.cf"
    old.write_bytes(b"myhostname = old\n")
    old.chmod(0o600)
    new = tmp_path / "dovecot.conf"
    changes = FileChanges()
    changes.write(old, b"myhostname = new\n", 0o644, before=read_file(old), daemons={"postfix"})
    changes.write(new, b"listen = *\n", 0o640, before=read_file(new), daemons={"dovecot"})
    assert changes.written == (old, new)
    assert old.read_bytes() == b"myhostname = new\n"

    restored, sharing = changes.put_back()

    assert restored == [old, new]
    assert sharing == set()
    assert old.read_bytes() == b"myhostname = old\n"
    assert _mode(old) == 0o600
    assert not new.exists()


def test_put_back_of_some_daemons_leaves_the_others_files(tmp_path: Path) -> None:
    """Only the files of the refusing daemon return; the daemons sharing them are named."""
    table = tmp_path / "KeyTable"
    table.write_bytes(b"old table\n")
    cert = tmp_path / "fullchain.pem"
    cert.write_bytes(b"old cert\n")
    changes = FileChanges()
    changes.write(table, b"new table\n", 0o644, before=read_file(table), daemons={"opendkim"})
    changes.write(
        cert, b"new cert\n", 0o644, before=read_file(cert), daemons={"postfix", "dovecot"}
    )

    restored, sharing = changes.put_back({"postfix"})

    assert restored == [cert]
    assert sharing == {"dovecot"}
    assert cert.read_bytes() == b"old cert\n"
    assert table.read_bytes() == b"new table\n"


def test_a_deleted_file_comes_back_with_its_folder(tmp_path: Path) -> None:
    """A key deleted (and its folder pruned) is recreated, folder and all, on put_back."""
    key = tmp_path / "keys" / "example.org" / "s1.private"
    key.parent.mkdir(parents=True)
    key.write_bytes(b"key")
    key.chmod(0o600)
    changes = FileChanges()
    changes.delete(key, before=read_file(key), daemons={"opendkim"})
    key.parent.rmdir()
    assert changes.deleted == (key,)

    changes.put_back({"opendkim"})

    assert key.read_bytes() == b"key"
    assert _mode(key) == 0o600
    assert _mode(key.parent) == 0o750


def test_a_failing_write_puts_back_the_earlier_ones(tmp_path: Path) -> None:
    """Within undone_on_failure, a write that fails undoes every write before it."""
    first = tmp_path / "first"
    first.write_bytes(b"before")
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "inside").write_bytes(b"")  # a non-empty folder cannot be replaced by a file
    changes = FileChanges()
    with pytest.raises(HostStateError, match="Cannot write"), changes.undone_on_failure():
        changes.write(first, b"after", 0o644, before=read_file(first), daemons={"postfix"})
        changes.write(blocked, b"x", 0o644, before=read_file(blocked), daemons={"postfix"})
    assert first.read_bytes() == b"before"
    assert blocked.is_dir()


def test_a_missing_folder_gets_the_mode_asked_for(tmp_path: Path) -> None:
    """Setup asks for 0755 folders; by default a private file's folder is closed to others."""
    changes = FileChanges()
    changes.write(tmp_path / "a" / "conf", b"x", 0o600, before=None, daemons=(), folder_mode=0o755)
    changes.write(tmp_path / "b" / "key", b"x", 0o600, before=None, daemons=())
    changes.write(tmp_path / "c" / "table", b"x", 0o644, before=None, daemons=())
    assert _mode(tmp_path / "a") == 0o755
    assert _mode(tmp_path / "b") == 0o750
    assert _mode(tmp_path / "c") == 0o755


def test_read_file_follows_links_only_when_asked(tmp_path: Path) -> None:
    """Reconcile treats a link as no file; setup reads the file a link points to."""
    target = tmp_path / "real.cf"
    target.write_bytes(b"real")
    link = tmp_path / "main.cf"
    link.symlink_to(target)
    assert read_file(link) is None
    followed = read_file(link, follow_links=True)
    assert followed is not None
    assert followed.content == b"real"

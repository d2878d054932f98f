"""Atomic writes, directories, root containment and the reconcile lock on a real filesystem."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailctl.errors import ConflictError, HostStateError
from mailctl.host import fs


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """Run the test under a umask that would make files world-writable."""
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.fixture
def tight_umask() -> Iterator[None]:
    """Run the test under a umask that would make files readable by the owner only."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_creates_file_with_content(tmp_path: Path) -> None:
    """A new file holds exactly the bytes written, and nothing else is left in the folder."""
    target = tmp_path / "KeyTable"
    fs.write_atomic(target, b"line\n")
    assert target.read_bytes() == b"line\n"
    assert os.listdir(tmp_path) == ["KeyTable"]


def test_write_replaces_old_content(tmp_path: Path) -> None:
    """Writing again replaces the whole file, not appends to it."""
    target = tmp_path / "SigningTable"
    fs.write_atomic(target, b"old old old\n")
    fs.write_atomic(target, b"new\n")
    assert target.read_bytes() == b"new\n"


@pytest.mark.usefixtures("loose_umask")
def test_private_key_mode_ignores_loose_umask(tmp_path: Path) -> None:
    """A key written 0600 is 0600 even when the umask would allow everyone."""
    target = tmp_path / "s.private"
    fs.write_atomic(target, b"secret", mode=0o600)
    assert _mode(target) == 0o600


@pytest.mark.usefixtures("tight_umask")
def test_public_mode_ignores_tight_umask(tmp_path: Path) -> None:
    """A 0644 file is 0644 even under umask 077, so daemons running as others can read it."""
    target = tmp_path / "fullchain.pem"
    fs.write_atomic(target, b"cert", mode=0o644)
    assert _mode(target) == 0o644


def test_mode_is_changed_on_rewrite(tmp_path: Path) -> None:
    """Rewriting a 0644 file as 0600 tightens it."""
    target = tmp_path / "privkey.pem"
    fs.write_atomic(target, b"k", mode=0o644)
    fs.write_atomic(target, b"k", mode=0o600)
    assert _mode(target) == 0o600


def test_owner_is_set_when_given(tmp_path: Path) -> None:
    """uid and gid are applied to the new file."""
    assert os.geteuid() == 0, "changing a file's owner needs root, as scripts/test runs"
    target = tmp_path / "owned"
    fs.write_atomic(target, b"x", uid=1, gid=2)
    assert (target.stat().st_uid, target.stat().st_gid) == (1, 2)


def test_failed_write_keeps_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the data cannot reach the disk, the old file stays whole and no temp file remains."""
    target = tmp_path / "KeyTable"
    fs.write_atomic(target, b"old content\n")

    def failing_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(HostStateError, match="Input/output error"):
        fs.write_atomic(target, b"new content that never lands\n")
    monkeypatch.undo()
    assert target.read_bytes() == b"old content\n"
    assert os.listdir(tmp_path) == ["KeyTable"]


def test_failed_replace_removes_temp_file(tmp_path: Path) -> None:
    """If the rename fails (the target is a non-empty directory), the temp file is removed."""
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep").write_bytes(b"keep")
    with pytest.raises(HostStateError, match="Cannot write"):
        fs.write_atomic(target, b"data")
    assert sorted(os.listdir(tmp_path)) == ["busy"]
    assert (target / "keep").read_bytes() == b"keep"


def test_missing_directory_is_host_state_error(tmp_path: Path) -> None:
    """Writing into a folder that does not exist is reported, not a bare OSError."""
    with pytest.raises(HostStateError, match="Cannot create a file"):
        fs.write_atomic(tmp_path / "nope" / "file", b"x")


@pytest.mark.usefixtures("loose_umask")
def test_ensure_dir_sets_mode(tmp_path: Path) -> None:
    """ensure_dir creates nested folders and gives the last one the mode asked for."""
    created = fs.ensure_dir(tmp_path / "a" / "b", 0o750)
    assert created.is_dir()
    assert _mode(created) == 0o750
    fs.ensure_dir(created, 0o700)
    assert _mode(created) == 0o700


def test_inside_accepts_paths_under_root(tmp_path: Path) -> None:
    """A path below the root comes back resolved."""
    assert fs.inside(tmp_path, Path("keys/example.org")) == tmp_path.resolve() / "keys/example.org"
    assert fs.inside(tmp_path, tmp_path / "x") == tmp_path.resolve() / "x"


@pytest.mark.parametrize("escape", ["..", "../other", "a/../../b", "/etc/passwd"])
def test_inside_refuses_escapes(tmp_path: Path, escape: str) -> None:
    """Dot-dot and absolute paths outside the root are refused."""
    root = tmp_path / "root"
    root.mkdir()
    with pytest.raises(HostStateError, match="outside"):
        fs.inside(root, Path(escape))


def test_inside_refuses_symlink_out(tmp_path: Path) -> None:
    """A symlink inside the root pointing outside it counts as outside."""
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)
    with pytest.raises(HostStateError, match="outside"):
        fs.inside(root, Path("link/secret"))


def test_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    """While one reconcile holds the lock, another gives up with ConflictError."""
    lock = tmp_path / "reconcile.lock"
    with (
        fs.locked(lock),
        pytest.raises(ConflictError, match="Another reconcile"),
        fs.locked(lock, timeout=0.2),
    ):
        pass


def test_lock_is_released_after_the_block(tmp_path: Path) -> None:
    """After the block ends (even by an exception), the lock can be taken again."""
    lock = tmp_path / "reconcile.lock"
    with pytest.raises(RuntimeError), fs.locked(lock):
        raise RuntimeError("boom")
    with fs.locked(lock, timeout=0.2):
        assert lock.exists()


def test_ensure_dir_parents_stay_walkable_under_umask_077(tmp_path: Path) -> None:
    """Under mailctl's umask 077, missing parents are still 0755 so a daemon can walk them."""
    old = os.umask(0o077)
    try:
        created = fs.ensure_dir(tmp_path / "etc" / "opendkim" / "keys", 0o750)
    finally:
        os.umask(old)
    assert _mode(tmp_path / "etc") == 0o755
    assert _mode(tmp_path / "etc" / "opendkim") == 0o755
    assert _mode(created) == 0o750


def test_a_failed_batch_removes_its_temporary_files(tmp_path: Path) -> None:
    """A write that cannot happen leaves no temporary file and keeps the files renamed so far."""
    ok = tmp_path / "ok"
    ok.mkdir()
    writes = [fs.PendingWrite(ok / f"f{i}", b"x" * i, 0o600) for i in range(20)]
    writes.append(fs.PendingWrite(tmp_path / "missing" / "f", b"y", 0o600))
    done: list[Path] = []
    with pytest.raises(HostStateError, match="missing"):
        fs.write_atomic_batch(writes, lambda item: done.append(item.path))
    assert done == []  # the batch failed before any rename
    assert sorted(p.name for p in ok.iterdir()) == []


def test_batched_writes_flush_and_rename(tmp_path: Path) -> None:
    """Every file of a batch lands whole with its mode; the callback hears of each."""
    pem = b"-----BEGIN PRIVATE KEY-----\n" + os.urandom(48).hex().encode() + b"\n"
    writes = [fs.PendingWrite(tmp_path / f"k{i}", pem, 0o640) for i in range(300)]
    done: list[Path] = []
    fs.write_atomic_batch(writes, lambda item: done.append(item.path))
    assert done == [w.path for w in writes]
    assert all(w.path.read_bytes() == pem for w in writes)
    assert {w.path.stat().st_mode & 0o777 for w in writes} == {0o640}
    assert sorted(tmp_path.iterdir()) == sorted(w.path for w in writes)

"""Domain archives round-trip maildirs byte-exact, also while mail moves during the export."""

from __future__ import annotations

import hashlib
import os
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailctl.archive import (
    AliasEntry,
    DkimKeyEntry,
    FileEntry,
    MailboxEntry,
    Manifest,
    export_stream,
    verify_and_extract,
)
from mailctl.errors import HostStateError, InvalidInputError
from mailctl.services.archive_export import write_export

LIMITS = {"max_total_bytes": 1 << 30, "max_files": 100_000}
BASE_NS = 1_700_000_000_123_456_789

Snapshot = dict[str, tuple[int, str, int]]


def _manifest(*localparts: str) -> Manifest:
    return Manifest(
        domain="example.org",
        mailboxes=[
            MailboxEntry(f"{lp}@example.org", "{ARGON2ID}$argon2id$v=19$x", f"maildirs/{lp}")
            for lp in localparts
        ],
        aliases=[AliasEntry("postmaster@example.org", "alice@example.org")],
        dkim_keys=[DkimKeyEntry("mail", "rsa", "-----BEGIN PRIVATE KEY-----\nMIIE\n")],
    )


def _write(path: Path, data: bytes, mtime_ns: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def _snapshot(root: Path) -> Snapshot:
    """Every regular file under root: relative path -> (size, sha256, mtime_ns)."""
    found: Snapshot = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            if path.is_symlink() or not path.is_file():
                continue
            st = path.stat()
            found[path.relative_to(root).as_posix()] = (
                st.st_size,
                hashlib.sha256(path.read_bytes()).hexdigest(),
                st.st_mtime_ns,
            )
    return found


def _directories(root: Path) -> set[str]:
    return {
        Path(dirpath, d).relative_to(root).as_posix()
        for dirpath, dirs, _files in os.walk(root)
        for d in dirs
    }


@pytest.fixture
def mail_root(tmp_path: Path) -> Path:
    """Two mailboxes: thousands of messages with awkward names, folders and index files."""
    rng = random.Random(7)
    root = tmp_path / "mail"
    alice = root / "alice"
    folders = [alice, alice / ".Sent", alice / ".Archive.2023", alice / ".Ünïcødé Folder"]
    for folder in folders:
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True)
    for i in range(3000):
        folder = folders[i % len(folders)]
        size = 0 if i % 97 == 0 else rng.randrange(1, 3000)
        name = f"1700000{i:03d}.M{i}P2.host,S={size}:2,FRS"
        if i % 5 == 1:
            name = f"1700000{i:03d}.M{i}P2.mail host with spaces,S={size}:2,S"
        elif i % 5 == 2:
            name = f"1700000{i:03d}.M{i}P2.hôte-ünïcode,S={size}"
        sub = "new" if name.count(":") == 0 else "cur"
        _write(folder / sub / name, rng.randbytes(size), BASE_NS + i * 1_000_001)
    for name in ("dovecot.index", "dovecot.index.log", "dovecot-uidlist", "subscriptions"):
        _write(alice / name, rng.randbytes(rng.randrange(0, 5000)), BASE_NS - 7)
    _write(alice / ".Sent" / "dovecot-uidlist", b"3 V1700000000 N1\n", BASE_NS - 9)
    (alice / "LAYOUT=fs" / "nested" / "cur").mkdir(parents=True)
    _write(alice / "LAYOUT=fs" / "nested" / "cur" / "1.M1.host:2,", b"deep\n", BASE_NS)
    bob = root / "bob"
    for sub in ("cur", "new", "tmp"):
        (bob / sub).mkdir(parents=True)
    _write(bob / "cur" / "1700000000.M1P2.host,S=5:2,", b"hello", BASE_NS)
    return root


def _export_and_extract(tmp_path: Path, mail_root: Path, manifest: Manifest) -> Manifest:
    dirs = {lp: mail_root / lp for lp in ("alice", "bob")}
    write_export(tmp_path / "example.org.tar.gz", manifest, dirs)
    return verify_and_extract(tmp_path / "example.org.tar.gz", tmp_path / "staging", **LIMITS)


def test_roundtrip_restores_every_file_byte_exact(tmp_path: Path, mail_root: Path) -> None:
    """Every file comes back with the same bytes, size and mtime, and the same folders."""
    manifest = _manifest("alice", "bob", "carol")
    before = {lp: _snapshot(mail_root / lp) for lp in ("alice", "bob")}

    restored = _export_and_extract(tmp_path, mail_root, manifest)

    staged = tmp_path / "staging" / "maildirs"
    for lp in ("alice", "bob"):
        assert _snapshot(staged / lp) == before[lp]
        assert _directories(staged / lp) == _directories(mail_root / lp)
    assert len(before["alice"]) > 3000
    assert restored == manifest
    assert restored.mailboxes[2].email == "carol@example.org"
    assert restored.dkim_keys[0].private_pem.startswith("-----BEGIN PRIVATE KEY-----")


def test_in_flight_deliveries_in_tmp_are_left_out(tmp_path: Path, mail_root: Path) -> None:
    """A half-written delivery in tmp/ is not archived; the empty tmp/ is."""
    _write(mail_root / "bob" / "tmp" / "1700000001.M9P9.host", b"half a mess", BASE_NS)

    _export_and_extract(tmp_path, mail_root, _manifest("alice", "bob"))

    staged_bob = tmp_path / "staging" / "maildirs" / "bob"
    assert (staged_bob / "tmp").is_dir()
    assert list((staged_bob / "tmp").iterdir()) == []


def test_symlinks_and_fifos_are_not_followed_or_archived(tmp_path: Path, mail_root: Path) -> None:
    """A symlink to a secret or a fifo inside a maildir does not reach the archive."""
    secret = tmp_path / "secret"
    secret.write_bytes(b"root password")
    (mail_root / "bob" / "cur" / "evil:2,S").symlink_to(secret)
    (mail_root / "bob" / ".Linked").symlink_to(tmp_path, target_is_directory=True)
    os.mkfifo(mail_root / "bob" / "new" / "fifo")

    manifest = _export_and_extract(tmp_path, mail_root, _manifest("alice", "bob"))

    paths = {f.path for f in manifest.files} | set(manifest.directories)
    assert not any("evil" in p or "fifo" in p or "Linked" in p for p in paths)
    assert _snapshot(tmp_path / "staging" / "maildirs" / "bob") == {
        "cur/1700000000.M1P2.host,S=5:2,": (5, hashlib.sha256(b"hello").hexdigest(), BASE_NS)
    }


def test_stream_yields_bounded_chunks_and_reports_progress(mail_root: Path) -> None:
    """The export arrives in chunks near chunk_size; progress ends at all bytes and files."""
    calls: list[tuple[int, int]] = []
    manifest = _manifest("alice", "bob")
    chunks = list(
        export_stream(manifest, {"bob": mail_root / "bob"}, 4096, lambda b, f: calls.append((b, f)))
    )

    assert calls == [(5, 1)]
    assert len(chunks) >= 1
    assert max(len(c) for c in chunks) < 2 * 4096 + 1024
    assert b"".join(chunks)[:2] == b"\x1f\x8b"
    assert [f.path for f in manifest.files] == ["maildirs/bob/cur/1700000000.M1P2.host,S=5:2,"]


def test_missing_maildir_exports_a_mailbox_without_files(tmp_path: Path) -> None:
    """A mailbox that never received mail (no maildir yet) exports and imports empty."""
    manifest = _manifest("new")
    write_export(tmp_path / "a.tar.gz", manifest, {"new": tmp_path / "absent"})

    restored = verify_and_extract(tmp_path / "a.tar.gz", tmp_path / "staging", **LIMITS)

    assert restored.files == []
    assert restored.mailboxes[0].email == "new@example.org"


def test_maildir_of_an_unknown_mailbox_is_refused(tmp_path: Path) -> None:
    """Exporting a maildir whose mailbox the manifest does not list fails up front."""
    with pytest.raises(InvalidInputError, match="No mailbox in the manifest"):
        export_stream(_manifest("alice"), {"mallory": tmp_path})


def test_failed_export_leaves_the_old_archive_and_no_temp_file(
    tmp_path: Path, mail_root: Path
) -> None:
    """When the export fails midway the previous archive stays whole and no temp remains."""
    target = tmp_path / "out" / "example.org.tar.gz"
    target.parent.mkdir()
    target.write_bytes(b"previous archive")

    def explode(done_bytes: int, done_files: int) -> None:
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        write_export(target, _manifest("alice", "bob"), {"bob": mail_root / "bob"}, 4096, explode)

    assert target.read_bytes() == b"previous archive"
    assert [p.name for p in target.parent.iterdir()] == ["example.org.tar.gz"]


def test_written_archive_is_private_and_size_is_reported(tmp_path: Path, mail_root: Path) -> None:
    """The archive file holds keys and hashes, so it is 0600; its byte count is returned."""
    result = write_export(tmp_path / "a.tar.gz", _manifest("bob"), {"bob": mail_root / "bob"})

    assert result.path == tmp_path / "a.tar.gz"
    assert result.size == result.path.stat().st_size
    assert result.path.stat().st_mode & 0o777 == 0o600


def test_file_that_shrinks_while_read_fails_the_export(tmp_path: Path) -> None:
    """A message truncated in place mid-export stops the export instead of lying in the tar."""
    big = tmp_path / "m" / "cur" / "1700000000.M1P2.host:2,S"
    _write(big, random.Random(1).randbytes(1 << 20), BASE_NS)
    stream = export_stream(_manifest("m"), {"m": tmp_path / "m"}, 4096, compresslevel=1)

    next(stream)
    os.truncate(big, 10)

    with pytest.raises(HostStateError, match="shrank"):
        for _chunk in stream:
            pass


def _slow_export(manifest: Manifest, root: Path, actions: dict[int, list[str]]) -> Iterator[bytes]:
    """Consume the export chunk by chunk, changing the maildir after given file counts."""
    done = [0]

    def progress(_bytes: int, files: int) -> None:
        done[0] = files

    for chunk in export_stream(manifest, {"m": root}, 8192, progress, compresslevel=1):
        yield chunk
        for action in actions.pop(done[0], []):
            if action == "deliver-to-cur":
                # Dovecot moves new/ mail into cur/ and adds the info suffix.
                last = sorted((root / "new").iterdir())[-1]
                last.rename(root / "cur" / f"{last.name}:2,")
            elif action == "flag-last-cur":
                last = sorted((root / "cur").iterdir())[-1]
                last.rename(last.with_name(last.name.replace(":2,S", ":2,RS")))
            elif action == "expunge-a-cur":
                sorted((root / "cur").iterdir())[-2].unlink()
            elif action == "new-mail":
                _write(root / "new" / "1800000000.M1P1.host", b"arrived late", BASE_NS)


def test_mail_moving_during_export_still_verifies(tmp_path: Path) -> None:
    """Renames, deliveries and expunges mid-export give an archive that verifies and extracts."""
    rng = random.Random(3)
    root = tmp_path / "m"
    bodies: dict[str, bytes] = {}
    for i in range(10):
        bodies[f"new/1700000{i:03d}.M{i}P1.host"] = rng.randbytes(32 * 1024)
        bodies[f"cur/1700001{i:03d}.M{i}P1.host:2,S"] = rng.randbytes(32 * 1024)
    for rel, data in bodies.items():
        _write(root / rel, data, BASE_NS)
    (root / "tmp").mkdir()
    actions = {1: ["deliver-to-cur"], 12: ["flag-last-cur", "expunge-a-cur", "new-mail"]}
    manifest = _manifest("m")

    with (tmp_path / "a.tar.gz").open("wb") as sink:
        for chunk in _slow_export(manifest, root, actions):
            sink.write(chunk)
    restored = verify_and_extract(tmp_path / "a.tar.gz", tmp_path / "staging", **LIMITS)

    assert actions == {}
    staged = _snapshot(tmp_path / "staging" / "maildirs" / "m")
    on_disk = _snapshot(root)
    # new/ was listed before this message arrived: it belongs to the next export.
    del on_disk["new/1800000000.M1P1.host"]
    assert staged == on_disk
    assert "cur/1700000009.M9P1.host:2," in staged
    assert "cur/1700001009.M9P1.host:2,RS" in staged
    assert len(staged) == 19
    assert {f.sha256 for f in restored.files} == {v[1] for v in staged.values()}


def test_name_that_is_not_utf8_fails_the_export_loudly(tmp_path: Path) -> None:
    """A message whose name the manifest cannot carry stops the export instead of vanishing."""
    root = tmp_path / "m"
    (root / "cur").mkdir(parents=True)
    with open(os.fsencode(root / "cur") + b"/1700000000.M1P1.h\xff:2,S", "wb") as handle:
        handle.write(b"mail")

    with pytest.raises(HostStateError, match="not valid UTF-8"):
        b"".join(export_stream(_manifest("m"), {"m": root}))


def _compressing_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("export-gzip")]


def test_an_export_given_up_midway_leaves_no_thread_behind(tmp_path: Path) -> None:
    """A download the client abandons stops the export's compressing thread with it."""
    rng = random.Random(5)
    for i in range(8):
        _write(
            tmp_path / "m" / "cur" / f"170000000{i}.M{i}P2.host:2,S",
            rng.randbytes(64 << 10),
            BASE_NS,
        )
    stream = export_stream(_manifest("m"), {"m": tmp_path / "m"}, 4096, compresslevel=1)
    next(stream)
    assert _compressing_threads()
    stream.close()  # what the server does when the client goes away
    assert _compressing_threads() == []
    whole = b"".join(export_stream(_manifest("m"), {"m": tmp_path / "m"}, 4096))
    assert whole[:2] == b"\x1f\x8b"
    assert _compressing_threads() == []


@pytest.mark.parametrize("files", [0, 1, 3])
def test_the_manifest_in_pieces_is_the_manifest(files: int) -> None:
    """The pieces the exporter writes join to the very bytes of to_json."""
    manifest = Manifest(
        domain="example.org",
        mailboxes=[MailboxEntry("m@example.org", "{ARGON2ID}x", "maildirs/m")],
        aliases=[AliasEntry("a@example.org", "m@example.org")],
        dkim_keys=[DkimKeyEntry("s1", "ed25519", "-----BEGIN\nPEM\n-----END\n", True)],
    )
    for i in range(files):
        manifest.directories.append(f"maildirs/m/cur{i}")
        manifest.files.append(FileEntry(f'maildirs/m/cur/{i}:2,S "é"', i, "ab" * 32, i * 7))
    assert b"".join(manifest.to_json_parts()) == manifest.to_json()

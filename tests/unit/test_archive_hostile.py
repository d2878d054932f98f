"""The importer refuses hostile or broken archives and leaves the staging directory empty."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
import time
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from mailctl.archive import MailboxEntry, Manifest, verify_and_extract
from mailctl.archive.format import FileEntry
from mailctl.config import Settings
from mailctl.errors import HostStateError, InvalidInputError, TooLargeError

LIMITS = {"max_total_bytes": 1 << 20, "max_files": 100}
MESSAGE = "maildirs/alice/cur/1700000000.M1P2.host,S=5:2,S"
BODY = b"hello"
GIB = 1 << 30


def _manifest(files: dict[str, bytes]) -> Manifest:
    return Manifest(
        domain="example.org",
        mailboxes=[MailboxEntry("alice@example.org", "{ARGON2ID}x", "maildirs/alice")],
        files=[
            FileEntry(path, len(data), hashlib.sha256(data).hexdigest(), 1_700_000_000 * 10**9)
            for path, data in files.items()
        ],
    )


def _info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.size = size
    return info


def _tar(
    members: list[tuple[tarfile.TarInfo, bytes]],
    manifest: bytes | None = None,
    manifest_first: bool = False,
) -> bytes:
    """Build a raw tar of the given members, the manifest last unless told otherwise."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = list(members)
        if manifest is not None:
            entry = (_info("manifest.json", size=len(manifest)), manifest)
            entries.insert(0, entry) if manifest_first else entries.append(entry)
        for info, data in entries:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return raw.getvalue()


def _archive(files: dict[str, bytes], listed: dict[str, bytes] | None = None) -> bytes:
    """A .tar.gz holding ``files`` whose manifest describes ``listed`` (default: the same)."""
    manifest = _manifest(files if listed is None else listed).to_json()
    return gzip.compress(_tar([(_info(p, size=len(d)), d) for p, d in files.items()], manifest))


def _refused(tmp_path: Path, archive: bytes | BinaryIO, error: type[Exception], match: str) -> None:
    staging = tmp_path / "staging"
    source = io.BytesIO(archive) if isinstance(archive, bytes) else archive
    with pytest.raises(error, match=match):
        verify_and_extract(source, staging, **LIMITS)
    assert list(staging.iterdir()) == []


def test_a_well_formed_archive_is_accepted(tmp_path: Path) -> None:
    """The baseline the hostile variants start from does extract."""
    manifest = verify_and_extract(
        io.BytesIO(_archive({MESSAGE: BODY})), tmp_path / "staging", **LIMITS
    )

    assert (tmp_path / "staging" / MESSAGE).read_bytes() == BODY
    assert manifest.files[0].path == MESSAGE


def test_an_archive_with_its_manifest_first_is_accepted(tmp_path: Path) -> None:
    """A manifest as the first member is read before any file, in one pass."""
    archive = gzip.compress(
        _tar([(_info(MESSAGE, size=len(BODY)), BODY)], _manifest({MESSAGE: BODY}).to_json(), True)
    )

    class _OnePass(io.BytesIO):
        def seekable(self) -> bool:
            return False

    manifest = verify_and_extract(_OnePass(archive), tmp_path / "staging", **LIMITS)

    assert (tmp_path / "staging" / MESSAGE).read_bytes() == BODY
    assert manifest.files[0].path == MESSAGE


def _with_member(info: tarfile.TarInfo, data: bytes = b"") -> bytes:
    listed = {MESSAGE: BODY}
    members = [(_info(MESSAGE, size=len(BODY)), BODY), (info, data)]
    return gzip.compress(_tar(members, _manifest(listed).to_json()))


def _link(name: str, kind: bytes, target: str) -> tarfile.TarInfo:
    info = _info(name, kind)
    info.linkname = target
    return info


HOSTILE_MEMBERS: dict[str, tuple[tarfile.TarInfo, str]] = {
    "absolute": (_info("/etc/cron.d/evil", size=1), "absolute path"),
    "dotdot": (_info("maildirs/alice/../../../x", size=1), r"contains '\.\.'"),
    "backslash": (_info("maildirs/alice/cur/..\\..\\x", size=1), "backslash"),
    "outside": (_info("etc/passwd", size=1), "outside maildirs/"),
    "dot": (_info("maildirs/./alice/x", size=1), "empty or '.' path component"),
    "symlink": (_link("maildirs/alice/cur/l", tarfile.SYMTYPE, "/etc/shadow"), "symbolic link"),
    "hardlink": (_link("maildirs/alice/cur/h", tarfile.LNKTYPE, "/etc/shadow"), "hard link"),
    "chardev": (_info("maildirs/alice/cur/tty", tarfile.CHRTYPE), "character device"),
    "blockdev": (_info("maildirs/alice/cur/sda", tarfile.BLKTYPE), "block device"),
    "fifo": (_info("maildirs/alice/cur/pipe", tarfile.FIFOTYPE), "a fifo"),
    "unlisted": (_info("maildirs/alice/cur/extra", size=1), "not in the manifest"),
    "duplicate": (_info(MESSAGE, size=len(BODY)), "twice"),
    "other mailbox": (_info("maildirs/mallory/cur/x", size=1), "not in the manifest"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_MEMBERS))
def test_hostile_member_is_refused(tmp_path: Path, case: str) -> None:
    """Unsafe names, links, devices, fifos, duplicates and unlisted files are refused."""
    info, message = HOSTILE_MEMBERS[case]
    data = BODY if case == "duplicate" else b"x" * info.size

    _refused(tmp_path, _with_member(info, data), InvalidInputError, message)


def _flip(data: bytes, offset: int) -> bytes:
    return data[:offset] + bytes([data[offset] ^ 0x01]) + data[offset + 1 :]


BROKEN: dict[str, tuple[Callable[[], bytes], str]] = {
    "not gzip": (lambda: _tar([(_info(MESSAGE, size=5), BODY)], b"{}"), "not a gzip file"),
    "empty": (lambda: b"", "not a gzip file"),
    "truncated": (lambda: _archive({MESSAGE: BODY * 999})[:-40], "truncated"),
    "truncated tar": (lambda: gzip.compress(_tar([(_info(MESSAGE, size=5), BODY)])[:600]), "trunc"),
    "corrupt gzip": (lambda: _flip(_archive({MESSAGE: BODY}), 30), "corrupt"),
    "flipped byte in file": (
        lambda: _archive({MESSAGE: b"hellO"}, listed={MESSAGE: BODY}),
        "does not match its SHA-256",
    ),
    "size mismatch": (
        lambda: _archive({MESSAGE: b"hello!"}, listed={MESSAGE: BODY}),
        "6 bytes; the manifest says 5",
    ),
    "listed but missing": (
        lambda: _archive({}, listed={MESSAGE: BODY}),
        "which is missing",
    ),
    "no manifest": (
        lambda: gzip.compress(_tar([(_info(MESSAGE, size=5), BODY)])),
        "has no manifest.json",
    ),
    "manifest in the middle": (
        lambda: gzip.compress(
            _tar(
                [
                    (_info(MESSAGE, size=5), BODY),
                    (
                        _info("manifest.json", size=len(_manifest({MESSAGE: BODY}).to_json())),
                        _manifest({MESSAGE: BODY}).to_json(),
                    ),
                    (_info("maildirs/alice/cur/later", size=5), BODY),
                ]
            )
        ),
        "must be the first or the last member",
    ),
    "manifest not json": (
        lambda: gzip.compress(_tar([], b"{not json")),
        "not valid JSON",
    ),
    "wrong version": (
        lambda: gzip.compress(_tar([], _json_with(version=2))),
        "format version 2",
    ),
    "manifest lacks keys": (
        lambda: gzip.compress(_tar([], b'{"version": 1}')),
        "lacks domain",
    ),
    "manifest with bad path": (
        lambda: gzip.compress(_tar([], _json_with(directories=["etc/cron.d"]))),
        "outside maildirs/",
    ),
}


def _json_with(**changes: Any) -> bytes:
    data = _manifest({}).to_dict()
    data.update(changes)
    return json.dumps(data).encode()


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_archive_is_refused(tmp_path: Path, case: str) -> None:
    """Damaged, truncated or lying archives are refused with a message saying why."""
    build, message = BROKEN[case]

    _refused(tmp_path, build(), InvalidInputError, message)


def test_checksum_mismatch_leaves_no_file_behind(tmp_path: Path) -> None:
    """Files staged before the manifest revealed a mismatch are removed again."""
    files = {f"maildirs/alice/cur/{i}:2,S": b"%d" % i for i in range(20)}
    listed = dict(files, **{"maildirs/alice/cur/19:2,S": b"91"})

    _refused(tmp_path, _archive(files, listed), InvalidInputError, "SHA-256")


def test_too_many_files_is_refused(tmp_path: Path) -> None:
    """More members than max_files is refused as too large."""
    files = {f"maildirs/alice/cur/{i}:2,S": b"" for i in range(101)}

    _refused(tmp_path, _archive(files), TooLargeError, "more than 100 files")


def test_oversized_extended_header_is_refused(tmp_path: Path) -> None:
    """A pax header claiming a gigabyte is refused before anything is read into memory."""
    raw = bytearray(_tar([(_info(MESSAGE, size=5), BODY)], b"{}"))
    header = _info("././@PaxHeader", tarfile.XHDTYPE, size=GIB).tobuf(tarfile.USTAR_FORMAT)

    _refused(tmp_path, gzip.compress(header + bytes(raw)), InvalidInputError, "extended tar header")


def test_staging_dir_must_start_empty(tmp_path: Path) -> None:
    """Extraction refuses a staging directory that already holds something."""
    staging = tmp_path / "staging"
    staging.mkdir()
    (staging / "left-over").write_bytes(b"")

    with pytest.raises(HostStateError, match="not empty"):
        verify_and_extract(io.BytesIO(_archive({MESSAGE: BODY})), staging, **LIMITS)
    assert [p.name for p in staging.iterdir()] == ["left-over"]


class _CountingReader(io.RawIOBase):
    """A file that counts the bytes read from it."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.consumed += len(data)
        return data


@pytest.fixture(scope="module")
def gigabyte_of_zeros(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A gzip member holding 1 GiB of zeros, compressed chunk by chunk (about 1 MB)."""
    path = tmp_path_factory.mktemp("bomb") / "zeros.gz"
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    with path.open("wb") as out:
        for _ in range(1024):
            out.write(compressor.compress(block))
        out.write(compressor.flush())
    return path


def _bomb(tmp_path: Path, prefix: bytes, zeros: Path) -> Path:
    # Concatenated gzip members are one gzip stream: prefix, then a gigabyte of zeros.
    bomb = tmp_path / "bomb.tar.gz"
    with bomb.open("wb") as out:
        out.write(gzip.compress(prefix))
        out.write(zeros.read_bytes())
    return bomb


@pytest.mark.parametrize(
    ("prefix", "message"),
    [
        pytest.param(
            _info(MESSAGE, size=GIB).tobuf(tarfile.PAX_FORMAT),
            "more than 1048576 bytes of files",
            id="one huge file",
        ),
        pytest.param(
            _tar([(_info(MESSAGE, size=5), BODY)], _manifest({MESSAGE: BODY}).to_json()),
            "decompresses to more than",
            id="zeros after the end",
        ),
    ],
)
def test_gzip_bomb_is_refused_early(
    tmp_path: Path, gigabyte_of_zeros: Path, prefix: bytes, message: str
) -> None:
    """A gigabyte of zeros is refused after about max_total_bytes, reading little of it."""
    bomb = _bomb(tmp_path, prefix, gigabyte_of_zeros)
    started = time.monotonic()

    with bomb.open("rb") as handle:
        counting = _CountingReader(handle)
        _refused(tmp_path, counting, TooLargeError, message)  # type: ignore[arg-type]

    assert time.monotonic() - started < 5
    # 1 GiB of zeros is about 1 MB compressed; reading stops within a few read chunks.
    assert counting.consumed < 256 * 1024


def _with_checksum(header: bytearray) -> bytes:
    header[148:156] = b" " * 8
    header[148:155] = b"%06o\x00" % sum(header)
    return bytes(header)


def test_negative_member_size_is_refused(tmp_path: Path) -> None:
    """A header whose size field reads as a negative number is refused as corrupt."""
    header = bytearray(_info(MESSAGE, size=5).tobuf(tarfile.USTAR_FORMAT))
    header[124:136] = b"-0000000005\x00"
    raw = _with_checksum(header) + BODY.ljust(512, b"\x00") + bytes(1024)

    _refused(tmp_path, gzip.compress(raw), InvalidInputError, "negative size")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param(
            {"files": [{"path": MESSAGE, "size": 5, "sha256": "0" * 64, "mtime_ns": 10**40}]},
            "out of range",
            id="mtime overflow",
        ),
        pytest.param(
            {"files": [{"path": "maildirs/alice", "size": 0, "sha256": "0" * 64, "mtime_ns": 0}]},
            "not inside a maildir",
            id="file in place of a maildir",
        ),
        pytest.param(
            {"files": [{"path": MESSAGE, "size": True, "sha256": "0" * 64, "mtime_ns": 0}]},
            "must be an integer",
            id="boolean size",
        ),
        pytest.param({"generated_at": "2024-05-01T12:00:00"}, "not in UTC", id="naive time"),
        pytest.param({"extra": 1}, "unknown keys: extra", id="unknown key"),
    ],
)
def test_invalid_manifest_values_are_refused(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    """Manifest values that could not be restored faithfully are refused on load."""
    _refused(tmp_path, gzip.compress(_tar([], _json_with(**changes))), InvalidInputError, message)


def _bytes_written() -> int:
    with open("/proc/self/io") as counters:
        return next(int(line.split()[1]) for line in counters if line.startswith("wchar:"))


@pytest.mark.security(
    finding=5,
    claim="With the default limits, a gzip bomb (1 GiB of zeros in 4.7 MB, no "
    "manifest) is refused after inflating 16 MiB, without writing a byte of it to disk.",
)
def test_gzip_bomb_with_default_limits_writes_nothing(
    tmp_path: Path, gigabyte_of_zeros: Path, figure: Callable[[str, object], None]
) -> None:
    """The finding's bomb under the default settings: refused early, nothing on disk."""
    settings = Settings(data_dir=tmp_path / "data")
    bomb = _bomb(tmp_path, _info(MESSAGE, size=GIB).tobuf(tarfile.PAX_FORMAT), gigabyte_of_zeros)
    staging = tmp_path / "staging"
    before, started = _bytes_written(), time.monotonic()

    with pytest.raises(TooLargeError, match="times its size"):
        verify_and_extract(
            bomb,
            staging,
            max_total_bytes=settings.max_import_bytes,
            max_files=settings.max_import_files,
            max_ratio=settings.max_import_ratio,
            max_manifest_bytes=settings.max_import_manifest_bytes,
            max_depth=settings.max_import_depth,
        )

    written = _bytes_written() - before
    figure("archive bytes", bomb.stat().st_size)
    figure("bytes written before refusal", written)
    figure("seconds", round(time.monotonic() - started, 2))
    assert list(staging.iterdir()) == []
    assert written < 64 * 1024


AMPLIFYING = {
    "empty lists": ('"files"', "[]"),
    "short strings": ('"files"', '"ab"'),
    "empty objects": ('"directories"', "{}"),
    "numbers": ('"mailboxes"', "12345"),
}


@pytest.mark.parametrize("shape", sorted(AMPLIFYING))
def test_a_manifest_shaped_to_swell_in_memory_is_refused_at_once(shape: str) -> None:
    """8 MB of tiny list items (20x as Python objects) is refused holding little more."""
    key, item = AMPLIFYING[shape]
    text = '{"version": 1, ' + key + ": [" + ",".join([item] * (8_000_000 // len(item))) + "]}"
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInputError):
            Manifest.from_json(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()

    assert peak < 8 * 1024 * 1024

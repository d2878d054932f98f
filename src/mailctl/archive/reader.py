"""Read a domain archive as a stream, refuse anything hostile, and stage its files."""

from __future__ import annotations

import hashlib
import os
import shutil
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mailctl.archive.format import MANIFEST_NAME, Manifest, check_member_path
from mailctl.domain.numbers import ascii_digits, ascii_int
from mailctl.errors import HostStateError, InvalidInputError, TooLargeError

BLOCK = 512
RECORD = 20 * BLOCK
_CHUNK = 64 * 1024
# Our own extended headers hold one path, a size and an mtime: a few hundred bytes.
MAX_EXTENDED_HEADER = 64 * 1024
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
# Tar framing each member may add beyond its data: header, pax header and record,
# padding. Paths are at most a few KiB, so 8 KiB per member is generous.
_FRAMING_PER_MEMBER = 8 * 1024

_REGULAR = (b"0", b"\x00")
_REFUSED_TYPES = {
    b"1": "a hard link",
    b"2": "a symbolic link",
    b"3": "a character device",
    b"4": "a block device",
    b"6": "a fifo",
    b"K": "a link",
    b"g": "a global pax header",
}


class _Gunzip:
    """Decompresses a gzip stream on demand, refusing it once it outgrows ``limit``.

    Output is produced in bounded steps, so a bomb costs at most ``limit`` bytes of
    decompression work and a few chunks of memory before it is refused.
    """

    def __init__(self, source: BinaryIO, limit: int) -> None:
        self._source = source
        self._limit = limit
        self._zlib = zlib.decompressobj(31)
        self._pending = b""
        self._buffer = bytearray()
        self._started = False
        self.total = 0

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes; fewer only where the gzip stream ends."""
        while len(self._buffer) < size and self._fill():
            pass
        data = bytes(self._buffer[:size])
        del self._buffer[:size]
        return data

    def _fill(self) -> bool:
        decomp = self._zlib
        if decomp.unconsumed_tail:
            data = decomp.unconsumed_tail
        elif self._pending:
            data, self._pending = self._pending, b""
        else:
            data = self._source.read(_CHUNK)
            if not self._started:
                if data[:2] != b"\x1f\x8b":
                    raise InvalidInputError("The archive is not a gzip file (.tar.gz).")
                self._started = True
            if not data:
                if decomp.eof:
                    return False
                raise InvalidInputError("The archive is truncated: the gzip stream ends early.")
        if decomp.eof:
            # Concatenated gzip members are one gzip file (RFC 1952, section 2.2).
            decomp = self._zlib = zlib.decompressobj(31)
        try:
            out = decomp.decompress(data, 4 * _CHUNK)
        except zlib.error as exc:
            raise InvalidInputError(f"The archive is corrupt: gzip data error ({exc}).") from exc
        if decomp.eof:
            self._pending = decomp.unused_data
        self.total += len(out)
        if self.total > self._limit:
            raise TooLargeError(
                f"The archive decompresses to more than {self._limit} bytes; refused."
            )
        self._buffer += out
        return True


@dataclass(frozen=True)
class _Member:
    name: str
    kind: bytes
    size: int


def _number(field: bytes) -> int:
    if field[:1] == b"\x80":
        # GNU base-256 for values too large for octal digits.
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\x00", 1)[0].strip(b" ")
    try:
        return int(text, 8) if text else 0
    except ValueError as exc:
        raise InvalidInputError("The archive is corrupt: a tar header has a bad number.") from exc


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(
            f"The archive has a member name that is not UTF-8: {raw!r}."
        ) from exc


def _pax_records(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos : pos + 1] != b"\x00":
        length_text, sep, _ = data[pos : pos + 32].partition(b" ")
        length = int(length_text) if ascii_digits(length_text.decode("ascii", "replace")) else 0
        record = data[pos : pos + length]
        if not sep or length <= len(length_text) + 1 or not record.endswith(b"\n"):
            raise InvalidInputError("The archive is corrupt: a pax header is malformed.")
        key, eq, value = record[len(length_text) + 1 : -1].partition(b"=")
        if not eq:
            raise InvalidInputError("The archive is corrupt: a pax record lacks '='.")
        records[_text(key)] = _text(value)
        pos += length
    if records.get("hdrcharset") == "BINARY":
        raise InvalidInputError("The archive has member names that are not UTF-8.")
    return records


def _skip_padding(src: _Gunzip, size: int) -> None:
    pad = -size % BLOCK
    if pad and len(src.read(pad)) != pad:
        raise InvalidInputError("The archive is truncated inside a member.")


def _members(src: _Gunzip) -> Iterator[_Member]:
    """The tar members, with pax and GNU long names folded in; data is left to the caller."""
    overrides: dict[str, str] = {}
    while True:
        block = src.read(BLOCK)
        if len(block) < BLOCK:
            raise InvalidInputError("The archive is truncated: the tar end marker is missing.")
        if block == bytes(BLOCK):
            return
        stored = _number(block[148:156])
        unsigned = sum(block[:148]) + 8 * 32 + sum(block[156:])
        signed = unsigned - 2 * sum(b for b in block[:148] + block[156:] if b > 127)
        if stored not in (unsigned, signed):
            raise InvalidInputError("The archive is corrupt: a tar header checksum is wrong.")
        kind = block[156:157]
        size = _number(block[124:136])
        name = block[:100].split(b"\x00", 1)[0]
        if block[257:263] == b"ustar\x00" and block[345] != 0:
            name = block[345:500].split(b"\x00", 1)[0] + b"/" + name
        if kind in (b"x", b"L"):
            if size > MAX_EXTENDED_HEADER:
                raise InvalidInputError(
                    f"The archive has an extended tar header of {size} bytes; refused."
                )
            data = src.read(size)
            if len(data) != size:
                raise InvalidInputError("The archive is truncated inside a tar header.")
            _skip_padding(src, size)
            if kind == b"x":
                overrides.update(_pax_records(data))
            else:
                overrides["path"] = _text(data.split(b"\x00", 1)[0])
            continue
        member_name = overrides.get("path", _text(name))
        if "size" in overrides:
            pax_size = ascii_int(overrides["size"], max_digits=20)
            if pax_size is None:
                raise InvalidInputError("The archive is corrupt: a pax size is bad.")
            size = pax_size
        overrides = {}
        shown = member_name[:200]
        if size < 0:
            raise InvalidInputError(f"The archive member {shown!r} has a negative size.")
        if kind in _REFUSED_TYPES:
            raise InvalidInputError(
                f"The archive member {shown!r} is {_REFUSED_TYPES[kind]}; only regular files "
                "and directories are accepted."
            )
        if kind == b"5":
            yield _Member(member_name.rstrip("/"), kind, 0)
        elif kind in _REGULAR:
            yield _Member(member_name, b"0", size)
        else:
            raise InvalidInputError(
                f"The archive member {shown!r} has the unsupported tar type {kind!r}."
            )


class _Extraction:
    """One run of verify_and_extract: what was staged, counted and checked so far."""

    def __init__(self, staging: Path, max_total_bytes: int, max_files: int) -> None:
        self.staging = staging
        self.max_total_bytes = max_total_bytes
        self.max_files = max_files
        self.content = 0
        self.files: dict[str, tuple[int, str]] = {}
        self.directories: set[str] = set()

    def run(self, source: BinaryIO) -> Manifest:
        framing = (self.max_files + 2) * _FRAMING_PER_MEMBER + 2 * RECORD
        src = _Gunzip(source, self.max_total_bytes + framing)
        manifest: Manifest | None = None
        for member in _members(src):
            if manifest is not None:
                raise InvalidInputError(
                    f"The archive has {member.name[:200]!r} after {MANIFEST_NAME}; the "
                    "manifest must be the last member."
                )
            if member.name == MANIFEST_NAME and member.kind == b"0":
                manifest = Manifest.from_json(self.read_manifest(src, member.size))
                continue
            path = check_member_path(member.name)
            if path in self.files or path in self.directories:
                raise InvalidInputError(f"The archive holds {path!r} twice.")
            if len(self.files) + len(self.directories) >= self.max_files:
                raise TooLargeError(
                    f"The archive holds more than {self.max_files} files and directories."
                )
            if member.kind == b"5":
                self.directories.add(path)
                self.make_directory(path)
            else:
                self.count(member.size)
                self.files[path] = self.extract(src, path, member.size)
        if manifest is None:
            raise InvalidInputError(f"The archive has no {MANIFEST_NAME}.")
        # Read on to the gzip trailer: its CRC and length cover every byte of the tar.
        while src.read(_CHUNK):
            pass
        self.check(manifest)
        return manifest

    def count(self, size: int) -> None:
        self.content += size
        if self.content > self.max_total_bytes:
            raise TooLargeError(
                f"The archive holds more than {self.max_total_bytes} bytes of files."
            )

    def read_manifest(self, src: _Gunzip, size: int) -> bytes:
        if size > MAX_MANIFEST_BYTES:
            raise TooLargeError(f"The archive's {MANIFEST_NAME} is over {MAX_MANIFEST_BYTES}.")
        self.count(size)
        data = src.read(size)
        if len(data) != size:
            raise InvalidInputError(f"The archive is truncated inside {MANIFEST_NAME}.")
        _skip_padding(src, size)
        return data

    def target(self, path: str) -> Path:
        # check_member_path allowed no '..', no absolute path and no empty component,
        # and staging held nothing before (so no symlink): the target stays inside.
        return self.staging.joinpath(*path.split("/"))

    def make_directory(self, path: str) -> None:
        try:
            self.target(path).mkdir(mode=0o700, parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise InvalidInputError(f"The archive directory {path!r} clashes with a file.") from exc
        except OSError as exc:
            raise HostStateError(f"Cannot create {path} in staging: {exc.strerror}.") from exc

    def extract(self, src: _Gunzip, path: str, size: int) -> tuple[int, str]:
        target = self.target(path)
        digest = hashlib.sha256()
        try:
            target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd = os.open(
                target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise InvalidInputError(f"The archive file {path!r} clashes with another.") from exc
        except OSError as exc:
            raise HostStateError(f"Cannot create {path} in staging: {exc.strerror}.") from exc
        with os.fdopen(fd, "wb") as out:
            remaining = size
            while remaining:
                data = src.read(min(_CHUNK, remaining))
                if not data:
                    raise InvalidInputError(f"The archive is truncated inside {path!r}.")
                remaining -= len(data)
                digest.update(data)
                out.write(data)
        _skip_padding(src, size)
        return size, digest.hexdigest()

    def check(self, manifest: Manifest) -> None:
        listed = {f.path: f for f in manifest.files}
        for path in self.files:
            if path not in listed:
                raise InvalidInputError(f"The archive file {path!r} is not in the manifest.")
        unlisted = sorted(self.directories - set(manifest.directories))
        if unlisted:
            raise InvalidInputError(
                f"The archive directory {unlisted[0]!r} is not in the manifest."
            )
        for entry in manifest.files:
            if entry.path not in self.files:
                raise InvalidInputError(f"The manifest lists {entry.path!r}, which is missing.")
            size, sha256 = self.files[entry.path]
            if size != entry.size:
                raise InvalidInputError(
                    f"{entry.path!r} has {size} bytes; the manifest says {entry.size}."
                )
            if sha256 != entry.sha256:
                raise InvalidInputError(
                    f"{entry.path!r} does not match its SHA-256 checksum in the manifest."
                )
        for path in manifest.directories:
            if path not in self.directories:
                raise InvalidInputError(
                    f"The manifest lists the directory {path!r}, which is missing."
                )
        for entry in manifest.files:
            try:
                os.utime(self.target(entry.path), ns=(entry.mtime_ns, entry.mtime_ns))
            except OSError as exc:
                raise HostStateError(
                    f"Cannot set the mtime of {entry.path} in staging: {exc.strerror}."
                ) from exc


def verify_and_extract(
    archive: BinaryIO | Path,
    staging_dir: Path,
    *,
    max_total_bytes: int,
    max_files: int,
) -> Manifest:
    """Check an archive while streaming it and stage its files; return its manifest.

    ``archive`` is read once, front to back (an upload can be passed as it arrives).
    Files land in ``staging_dir`` (created if missing; must be empty) under their
    archive paths, with their mtimes restored once everything checked out; the caller
    moves them into place. On any refusal ``staging_dir`` is left empty and
    InvalidInputError says why (not gzip, truncated or corrupt; manifest missing, not
    last, invalid or of another version; unsafe, duplicate, unlisted or missing
    members; links, devices and fifos; size or checksum mismatch), or TooLargeError
    when files exceed ``max_total_bytes`` or members exceed ``max_files``, found while
    decompressing so a gzip bomb stops early.
    """
    staging = Path(staging_dir)
    try:
        staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        if any(staging.iterdir()):
            raise HostStateError(f"The staging directory {staging} is not empty.")
    except OSError as exc:
        raise HostStateError(f"Cannot use {staging} for staging: {exc.strerror}.") from exc
    extraction = _Extraction(staging, max_total_bytes, max_files)
    try:
        if isinstance(archive, Path):
            try:
                handle = archive.open("rb")
            except OSError as exc:
                raise InvalidInputError(f"Cannot open the archive: {exc.strerror}.") from exc
            with handle:
                return extraction.run(handle)
        return extraction.run(archive)
    except BaseException:
        _empty(staging)
        raise


def _empty(staging: Path) -> None:
    # Everything here was created by this run (staging started empty), and no symlink
    # was ever created, so rmtree cannot reach outside.
    for child in staging.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()

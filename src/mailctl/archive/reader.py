"""Read a domain archive as a stream, refuse anything hostile, and stage its files.

Two passes, so that no byte of mail reaches the disk before the manifest is read and
checked. The first inflates the archive without writing anything, checking every
member's type and name, their count and size, the expansion ratio, and reads the
manifest, which mailctl writes as the last member. The second inflates it again and
stages only what the manifest lists, with the size it lists, checking each file's
SHA-256 as soon as its last byte is written. An archive whose manifest is the first
member needs one pass: the manifest is known before the first file arrives.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from mailctl.archive.format import MANIFEST_NAME, MAX_PATH_DEPTH, Manifest, check_member_path
from mailctl.archive.tarscan import CHUNK, RECORD, Gunzip, Member, members, skip_padding
from mailctl.errors import HostStateError, InvalidInputError, TooLargeError

DEFAULT_MAX_RATIO = 200
DEFAULT_MAX_MANIFEST_BYTES = 64 * 1024 * 1024
# Tar framing each member may add beyond its data: header, pax header and record,
# padding. Paths are at most a few KiB, so 8 KiB per member is generous.
_FRAMING_PER_MEMBER = 8 * 1024


@dataclass(frozen=True)
class Limits:
    """What an archive may hold: file bytes, members, expansion, manifest size, depth."""

    max_total_bytes: int
    max_files: int
    max_ratio: int = DEFAULT_MAX_RATIO
    max_manifest_bytes: int = DEFAULT_MAX_MANIFEST_BYTES
    max_depth: int = MAX_PATH_DEPTH

    def gunzip(self, source: BinaryIO) -> Gunzip:
        """A decompressor of ``source`` that refuses more output than these limits allow."""
        framing = (self.max_files + 2) * _FRAMING_PER_MEMBER + 2 * RECORD
        limit = self.max_total_bytes + self.max_manifest_bytes + framing
        return Gunzip(source, limit, self.max_ratio)

    def check_manifest(self, manifest: Manifest) -> None:
        """Refuse a manifest that lists more files or bytes than the limits allow."""
        if len(manifest.files) + len(manifest.directories) > self.max_files:
            raise TooLargeError(
                f"The archive holds more than {self.max_files} files and directories."
            )
        if sum(entry.size for entry in manifest.files) > self.max_total_bytes:
            raise TooLargeError(
                f"The archive holds more than {self.max_total_bytes} bytes of files."
            )


def _read_manifest(src: Gunzip, member: Member, limits: Limits) -> Manifest:
    if member.size > limits.max_manifest_bytes:
        raise TooLargeError(
            f"The archive's {MANIFEST_NAME} is over {limits.max_manifest_bytes} bytes."
        )
    data = bytearray()
    while len(data) < member.size:
        chunk = src.read(min(CHUNK, member.size - len(data)))
        if not chunk:
            raise InvalidInputError(f"The archive is truncated inside {MANIFEST_NAME}.")
        data += chunk
    skip_padding(src, member.size)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"The archive manifest is not valid JSON: {exc}.") from exc
    del data  # the text alone is kept while parsing
    manifest = Manifest.from_json(text, max_depth=limits.max_depth)
    limits.check_manifest(manifest)
    return manifest


def _drain(src: Gunzip) -> None:
    # Read on to the gzip trailer: its CRC and length cover every byte of the tar.
    while src.read(CHUNK):
        pass


def _scan(src: Gunzip, limits: Limits) -> tuple[Manifest, Iterator[Member] | None]:
    """Pass one: check every member and read the manifest, writing nothing.

    Returns the manifest and, when it was the first member, the members still to come
    (the archive then needs no second pass).
    """
    stream = members(src)
    manifest: Manifest | None = None
    count = content = 0
    for index, member in enumerate(stream):
        if manifest is not None:
            raise InvalidInputError(
                f"The archive has {member.name[:200]!r} after {MANIFEST_NAME}; the manifest "
                "must be the first or the last member."
            )
        if member.name == MANIFEST_NAME and member.kind == b"0":
            manifest = _read_manifest(src, member, limits)
            if index == 0:
                return manifest, stream
            continue
        path = check_member_path(member.name, max_depth=limits.max_depth)
        count += 1
        if count > limits.max_files:
            raise TooLargeError(
                f"The archive holds more than {limits.max_files} files and directories."
            )
        content += member.size
        if content > limits.max_total_bytes:
            raise TooLargeError(
                f"The archive holds more than {limits.max_total_bytes} bytes of files."
            )
        if src.skip(member.size) != member.size:
            raise InvalidInputError(f"The archive is truncated inside {path!r}.")
        skip_padding(src, member.size)
    if manifest is None:
        raise InvalidInputError(f"The archive has no {MANIFEST_NAME}.")
    _drain(src)
    return manifest, None


class _Extraction:
    """Pass two: stage exactly what the manifest lists, checking each file as it lands."""

    def __init__(self, staging: Path, manifest: Manifest, limits: Limits) -> None:
        self.root = os.fspath(staging)
        self.manifest = manifest
        self.max_depth = limits.max_depth
        self.pending = {entry.path: entry for entry in manifest.files}
        self.pending_directories = set(manifest.directories)
        self.staged: set[str] = set()

    def run(self, src: Gunzip, stream: Iterator[Member], manifest_seen: bool) -> None:
        for member in stream:
            if member.name == MANIFEST_NAME and member.kind == b"0":
                if manifest_seen:
                    raise InvalidInputError(f"The archive holds {MANIFEST_NAME} twice.")
                manifest_seen = True
                # Read and checked by the first pass.
                src.skip(member.size)
                skip_padding(src, member.size)
                continue
            path = check_member_path(member.name, max_depth=self.max_depth)
            if path in self.staged:
                raise InvalidInputError(f"The archive holds {path!r} twice.")
            if member.kind == b"5":
                self.directory(path)
            else:
                self.file(src, path, member.size)
        if not manifest_seen:
            raise InvalidInputError(f"The archive has no {MANIFEST_NAME}.")
        _drain(src)
        self.finish()

    def target(self, path: str) -> str:
        # check_member_path allowed no '..', no absolute path and no empty component,
        # and staging held nothing before (so no symlink): the target stays inside.
        return os.path.join(self.root, *path.split("/"))

    def directory(self, path: str) -> None:
        if path not in self.pending_directories:
            raise InvalidInputError(f"The archive directory {path!r} is not in the manifest.")
        self.pending_directories.discard(path)
        self.staged.add(path)
        try:
            os.makedirs(self.target(path), mode=0o700, exist_ok=True)
        except (FileExistsError, NotADirectoryError) as exc:
            raise InvalidInputError(f"The archive directory {path!r} clashes with a file.") from exc
        except OSError as exc:
            raise HostStateError(f"Cannot create {path} in staging: {exc.strerror}.") from exc

    def file(self, src: Gunzip, path: str, size: int) -> None:
        entry = self.pending.pop(path, None)
        if entry is None:
            raise InvalidInputError(f"The archive file {path!r} is not in the manifest.")
        if size != entry.size:
            raise InvalidInputError(f"{path!r} has {size} bytes; the manifest says {entry.size}.")
        self.staged.add(entry.path)
        target = self.target(path)
        try:
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            fd = os.open(
                target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
        except (FileExistsError, NotADirectoryError, IsADirectoryError) as exc:
            raise InvalidInputError(f"The archive file {path!r} clashes with another.") from exc
        except OSError as exc:
            raise HostStateError(f"Cannot create {path} in staging: {exc.strerror}.") from exc
        digest = hashlib.sha256()
        with os.fdopen(fd, "wb") as out:
            remaining = size
            while remaining:
                data = src.read(min(CHUNK, remaining))
                if not data:
                    raise InvalidInputError(f"The archive is truncated inside {path!r}.")
                remaining -= len(data)
                digest.update(data)
                out.write(data)
        skip_padding(src, size)
        if digest.hexdigest() != entry.sha256:
            raise InvalidInputError(
                f"{path!r} does not match its SHA-256 checksum in the manifest."
            )

    def finish(self) -> None:
        for path in self.pending:
            raise InvalidInputError(f"The manifest lists {path!r}, which is missing.")
        for path in sorted(self.pending_directories):
            raise InvalidInputError(f"The manifest lists the directory {path!r}, which is missing.")
        for entry in self.manifest.files:
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
    max_ratio: int = DEFAULT_MAX_RATIO,
    max_manifest_bytes: int = DEFAULT_MAX_MANIFEST_BYTES,
    max_depth: int = MAX_PATH_DEPTH,
) -> Manifest:
    """Check an archive while streaming it and stage its files; return its manifest.

    ``archive`` is a file, or a stream read front to back: once when the manifest is
    its first member, else twice (a stream must then be seekable). Nothing is written
    before the manifest has been read and checked; then only what it lists lands in
    ``staging_dir`` (created if missing; must be empty), under the archive paths, with
    mtimes restored once everything checked out; the caller moves them into place. On
    any refusal ``staging_dir`` is left empty and InvalidInputError says why (not gzip,
    truncated or corrupt; manifest missing, misplaced, invalid or of another version;
    unsafe, duplicate, unlisted or missing members; links, devices and fifos; size or
    checksum mismatch), or TooLargeError when the archive holds more than
    ``max_total_bytes`` of files, more than ``max_files`` members, a manifest over
    ``max_manifest_bytes``, or inflates more than ``max_ratio`` times its size: found
    while decompressing, so a gzip bomb stops early.
    """
    limits = Limits(max_total_bytes, max_files, max_ratio, max_manifest_bytes, max_depth)
    staging = Path(staging_dir)
    try:
        staging.mkdir(mode=0o700, parents=True, exist_ok=True)
        if any(staging.iterdir()):
            raise HostStateError(f"The staging directory {staging} is not empty.")
    except OSError as exc:
        raise HostStateError(f"Cannot use {staging} for staging: {exc.strerror}.") from exc
    try:
        with _opened(archive) as (handle, start):
            src = limits.gunzip(handle)
            manifest, rest = _scan(src, limits)
            extraction = _Extraction(staging, manifest, limits)
            if rest is not None:
                extraction.run(src, rest, manifest_seen=True)
                return manifest
        with _opened(archive, start) as (handle, _):
            src = limits.gunzip(handle)
            extraction.run(src, members(src), manifest_seen=False)
        return manifest
    except BaseException:
        _empty(staging)
        raise


@contextlib.contextmanager
def _opened(archive: BinaryIO | Path, rewind: int | None = None) -> Iterator[tuple[BinaryIO, int]]:
    """The archive to read from its start (a stream is rewound to ``rewind``)."""
    if isinstance(archive, Path):
        try:
            handle = archive.open("rb")
        except OSError as exc:
            raise InvalidInputError(f"Cannot open the archive: {exc.strerror}.") from exc
        with handle:
            yield handle, 0
        return
    if rewind is None:
        start = archive.tell() if _seekable(archive) else 0
        yield archive, start
        return
    if not _seekable(archive):
        raise InvalidInputError(
            f"The archive's {MANIFEST_NAME} comes last, so it is read twice; give it as a file."
        )
    archive.seek(rewind)
    yield archive, rewind


def _seekable(stream: BinaryIO) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _empty(staging: Path) -> None:
    # Everything here was created by this run (staging started empty), and no symlink
    # was ever created, so rmtree cannot reach outside.
    for child in staging.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()

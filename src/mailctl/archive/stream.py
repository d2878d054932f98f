"""Stream a domain archive (.tar.gz) out of live maildirs, one bounded chunk at a time."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tarfile
import zlib
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from mailctl.archive.format import MANIFEST_NAME, FileEntry, Manifest, maildir_path
from mailctl.errors import HostStateError, InvalidInputError

BLOCK = 512
RECORD = 20 * BLOCK
DEFAULT_CHUNK = 64 * 1024

Progress = Callable[[int, int], None]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK so that a fifo swapped in for a message cannot hang the export in open().
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# The directory entry vanished or became something we do not follow.
_GONE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)


class ExportResult(NamedTuple):
    """Where the export service wrote the archive, and how many bytes it wrote."""

    path: Path
    size: int


# Tar bytes are compressed a chunk at a time in a thread of their own, while the next
# chunk is read and hashed: zlib, hashlib and os.read all let go of the GIL, so on two
# cores the export runs about as fast as tar piped into gzip. Two chunks are in flight
# at most (one compressing, one filling), and what is compressed is handed back one
# chunk later than before, so the stream still advances as the maildirs are read.
MIN_COMPRESS_BLOCK = 4096


class _GzipTar:
    """A tar writer that gzips as it goes and hands back compressed chunks as they fill."""

    def __init__(self, chunk_size: int, level: int) -> None:
        # wbits 31: a gzip wrapper (header, CRC-32, length) around the deflate stream.
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, 31)
        self._raw = bytearray()
        self._out = bytearray()
        self._chunk = chunk_size
        self._block = max(chunk_size, MIN_COMPRESS_BLOCK)
        self._pool: ThreadPoolExecutor | None = None
        self._compressing: Future[bytes] | None = None
        self.tar_bytes = 0

    def feed(self, data: bytes) -> Iterator[bytes]:
        self.tar_bytes += len(data)
        self._raw += data
        if len(self._raw) >= self._block:
            yield from self._hand_over()

    def _hand_over(self) -> Iterator[bytes]:
        """Start compressing the filled chunk; hand back what the previous one gave."""
        block = bytes(self._raw)
        self._raw.clear()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="export-gzip")
        previous = self._compressing
        # One worker: blocks are compressed in the order they were handed over.
        self._compressing = self._pool.submit(self._zlib.compress, block)
        if previous is not None:
            yield from self._emit(previous.result())

    def _emit(self, compressed: bytes) -> Iterator[bytes]:
        self._out += compressed
        if len(self._out) >= self._chunk:
            yield bytes(self._out)
            self._out.clear()

    def header(
        self, name: str, kind: bytes, size: int, mtime_ns: int, mode: int
    ) -> Iterator[bytes]:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = size
        info.mtime = mtime_ns // 1_000_000_000
        info.mode = mode
        # pax: names of any length, in UTF-8, without the 100-byte ustar limit.
        yield from self.feed(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "strict"))

    def pad(self, size: int) -> Iterator[bytes]:
        if size % BLOCK:
            yield from self.feed(bytes(BLOCK - size % BLOCK))

    def finish(self) -> Iterator[bytes]:
        end = bytes(2 * BLOCK)
        # Pad to a whole record like tar(1) does, so every tar reader is content.
        end += bytes(-(self.tar_bytes + len(end)) % RECORD)
        self.tar_bytes += len(end)
        self._raw += end
        if self._compressing is not None:
            yield from self._emit(self._compressing.result())
            self._compressing = None
        self._out += self._zlib.compress(bytes(self._raw))
        self._raw.clear()
        self._out += self._zlib.flush()
        if self._out:
            yield bytes(self._out)
            self._out.clear()

    def close(self) -> None:
        """Stop the compressing thread (after the archive, or when its reader gave up)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


class _Exporter:
    """Walks the maildirs through directory descriptors and archives what it finds."""

    def __init__(
        self, manifest: Manifest, out: _GzipTar, chunk_size: int, progress: Progress | None
    ) -> None:
        self.manifest = manifest
        self.out = out
        self.chunk_size = chunk_size
        self.progress = progress
        self.content_bytes = 0
        self.archived: set[str] = set()

    def maildir(self, root: Path, rel: str) -> Iterator[bytes]:
        try:
            dfd = os.open(root, _DIR_FLAGS)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                # Dovecot creates a maildir on first delivery or login; none means no mail.
                return
            raise HostStateError(f"Cannot open the maildir {root}: {exc.strerror}.") from exc
        try:
            yield from self.directory(dfd, rel, None)
        finally:
            os.close(dfd)

    def directory(self, dfd: int, rel: str, parent_fd: int | None) -> Iterator[bytes]:
        st = os.fstat(dfd)
        self.manifest.directories.append(rel)
        yield from self.out.header(rel, tarfile.DIRTYPE, 0, st.st_mtime_ns, 0o700)
        try:
            with os.scandir(dfd) as listing:
                entries = sorted(listing, key=_walk_order)
        except OSError as exc:
            raise HostStateError(f"Cannot list {rel}: {exc.strerror}.") from exc
        names = {e.name for e in entries}
        for entry in entries:
            path = f"{rel}/{_checked_name(rel, entry.name)}"
            if entry.is_dir(follow_symlinks=False):
                if entry.name == "tmp" and "cur" in names:
                    # A maildir's tmp/ holds deliveries still being written; complete ones
                    # move to new/, so only the empty directory belongs in the archive.
                    self.manifest.directories.append(path)
                    yield from self.out.header(path, tarfile.DIRTYPE, 0, st.st_mtime_ns, 0o700)
                    continue
                yield from self.subdirectory(dfd, entry.name, path)
            elif entry.is_file(follow_symlinks=False):
                found = yield from self.file(dfd, entry.name, path)
                if not found and os.path.basename(rel) in ("cur", "new") and parent_fd is not None:
                    yield from self.follow_renamed(parent_fd, rel, entry.name)
            # Symlinks, fifos, sockets and devices are neither followed nor archived.

    def subdirectory(self, dfd: int, name: str, path: str) -> Iterator[bytes]:
        try:
            sub = os.open(name, _DIR_FLAGS, dir_fd=dfd)
        except OSError as exc:
            if exc.errno in _GONE:
                return
            raise HostStateError(f"Cannot open {path}: {exc.strerror}.") from exc
        try:
            yield from self.directory(sub, path, dfd)
        finally:
            os.close(sub)

    def follow_renamed(self, folder_fd: int, rel: str, name: str) -> Iterator[bytes]:
        """Find a message that moved while we walked: new/ → cur/, or a flag change.

        Maildir names are ``<unique>[:2,<flags>]`` and only the flags part ever changes,
        so the message is the one file in cur/ or new/ with the same unique part.
        """
        unique = name.split(":", 1)[0]
        folder = rel.rsplit("/", 1)[0]
        for sub in ("cur", "new"):
            try:
                sub_fd = os.open(sub, _DIR_FLAGS, dir_fd=folder_fd)
            except OSError:
                continue
            try:
                with os.scandir(sub_fd) as listing:
                    moved = [e.name for e in listing if e.name.split(":", 1)[0] == unique]
                for new_name in moved:
                    path = f"{folder}/{sub}/{_checked_name(rel, new_name)}"
                    if path not in self.archived:
                        found = yield from self.file(sub_fd, new_name, path)
                        if found:
                            return
            finally:
                os.close(sub_fd)

    def file(self, dfd: int, name: str, path: str) -> Generator[bytes, None, bool]:
        """Archive one file; False when it vanished or is no longer a regular file."""
        if path in self.archived:
            # Already archived under this name after following a rename: nothing lost.
            return True
        try:
            fd = os.open(name, _FILE_FLAGS, dir_fd=dfd)
        except OSError as exc:
            if exc.errno in _GONE:
                return False
            raise HostStateError(f"Cannot open {path}: {exc.strerror}.") from exc
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return False
            # The descriptor pins this inode: a rename or unlink from now on does not
            # change what we read, and the header promises exactly st_size bytes.
            size = st.st_size
            yield from self.out.header(path, tarfile.REGTYPE, size, st.st_mtime_ns, 0o600)
            digest = hashlib.sha256()
            remaining = size
            while remaining:
                data = os.read(fd, min(self.chunk_size, remaining))
                if not data:
                    raise HostStateError(
                        f"{path} shrank from {size} to {size - remaining} bytes while it was "
                        "exported; maildir files must not be modified in place."
                    )
                remaining -= len(data)
                digest.update(data)
                yield from self.out.feed(data)
            yield from self.out.pad(size)
        except OSError as exc:
            raise HostStateError(f"Cannot read {path}: {exc.strerror}.") from exc
        finally:
            os.close(fd)
        self.archived.add(path)
        self.manifest.files.append(FileEntry(path, size, digest.hexdigest(), st.st_mtime_ns))
        self.content_bytes += size
        if self.progress is not None:
            self.progress(self.content_bytes, len(self.manifest.files))
        return True


def _walk_order(entry: os.DirEntry[str]) -> tuple[bool, str]:
    # new/ before cur/: messages only ever move new/ -> cur/, so one that moves while we
    # walk was either still in new/ when we listed it (and is followed into cur/), or
    # is already in cur/ when cur/ is listed. The other order could miss it in both.
    return entry.name != "new", entry.name


def _checked_name(rel: str, name: str) -> str:
    # Names that the manifest cannot carry or that the importer refuses must stop the
    # export loudly: a silently missing message is worse than a failed backup.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise HostStateError(
            f"{rel}/{name!r} is not valid UTF-8 and cannot be archived; rename it."
        ) from exc
    if "\\" in name:
        raise HostStateError(f"{rel}/{name!r} contains a backslash and cannot be archived.")
    if any(ord(char) < 0x20 or char == "\x7f" for char in name):
        raise HostStateError(
            f"{rel}/{name!r} contains a control character and cannot be archived; rename it."
        )
    return name


def export_stream(
    manifest: Manifest,
    mailbox_dirs: Mapping[str, Path],
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
    *,
    compresslevel: int = 6,
) -> Iterator[bytes]:
    """Yield the .tar.gz archive of a domain, chunk by chunk, while walking its maildirs.

    ``manifest`` carries the domain's rows with empty ``files`` and ``directories``;
    both are filled in place while streaming, and the finished manifest is the last
    member. ``mailbox_dirs`` maps each local part to its maildir on disk (a missing
    maildir archives as no files). ``progress(bytes, files)`` is called after each
    file with the file bytes and the file count archived so far.

    Memory stays at a few chunks whatever the size of files or archive. Mail that
    arrives, moves or changes flags during the export never corrupts the archive: a
    file that vanished before it was opened is looked up under its new maildir name,
    and an opened file is archived at the size its descriptor reports. A file that
    shrinks while read raises HostStateError, as do unreadable directories or files.
    """
    if manifest.files or manifest.directories:
        raise InvalidInputError("The manifest to export must start with no files.")
    if chunk_size < 1:
        raise InvalidInputError("The export chunk size must be positive.")
    maildirs = {m.maildir for m in manifest.mailboxes}
    roots: list[tuple[str, Path]] = []
    for localpart, root in sorted(mailbox_dirs.items()):
        rel = maildir_path(localpart)
        if rel not in maildirs:
            raise InvalidInputError(f"No mailbox in the manifest has the maildir {rel!r}.")
        roots.append((rel, Path(root)))
    return _generate(manifest, roots, chunk_size, progress, compresslevel)


def _generate(
    manifest: Manifest,
    roots: list[tuple[str, Path]],
    chunk_size: int,
    progress: Progress | None,
    compresslevel: int,
) -> Iterator[bytes]:
    out = _GzipTar(chunk_size, compresslevel)
    try:
        exporter = _Exporter(manifest, out, chunk_size, progress)
        for rel, root in roots:
            yield from exporter.maildir(root, rel)
        # In pieces: the manifest of a big domain is never one object tree in memory.
        parts = manifest.to_json_parts()
        size = sum(map(len, parts))
        mtime_ns = int(manifest.generated_at.timestamp()) * 1_000_000_000
        yield from out.header(MANIFEST_NAME, tarfile.REGTYPE, size, mtime_ns, 0o600)
        for part in parts:
            yield from out.feed(part)
        yield from out.pad(size)
        yield from out.finish()
    finally:
        out.close()

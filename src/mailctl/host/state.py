"""What reconcile last left on disk, so that an unchanged host is recognised by lstat alone.

After a run that left every rendered file as the database wants it, reconcile records
the digest of what it rendered from (``inputs``), and for every file and managed folder
the inode, size, times, mode and owner it then had, and each file's content digest.
The next run that renders from the same inputs finds nothing to do when every one of
those still has the same lstat: any write to a file changes its ctime (which no program
can set back), and any entry added, removed or renamed in a folder changes the folder's.

Timestamps are coarse (a clock tick, or a second on some filesystems), so an entry
changed within the same tick as it was looked at could keep its times. As git does for
its index, an entry whose time is not older than the moment the run began to look at
the disk (taken from the filesystem's own clock) is "racy": it is never trusted on its
stat, and the next run compares it (and records it again) the slow way.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailctl.host.fs import held_temp_file, write_atomic

STATE_NAME = ".reconcile-state.json"
_VERSION = 3
# 128 bits of SHA-256 tell two contents apart as surely as the whole digest would here.
_DIGEST_HEX = 32


def digest(content: bytes) -> str:
    """The content digest recorded for a file."""
    return hashlib.sha256(content).hexdigest()[:_DIGEST_HEX]


Signature = tuple[int, ...]
# The fields of a signature, in the order they are recorded (see ``_signature``).
_FIELDS = 7
_MTIME, _CTIME, _MODE = 2, 3, 4


def _signature(info: os.stat_result) -> Signature:
    return (
        info.st_ino,
        info.st_size,
        info.st_mtime_ns,
        info.st_ctime_ns,
        info.st_mode,
        info.st_uid,
        info.st_gid,
    )


def signature_of(path: str) -> Signature | None:
    """The lstat signature of ``path`` as it is recorded, or None if it cannot be had."""
    try:
        return _signature(os.lstat(path))
    except OSError:
        return None


@dataclass
class Seen:
    """What one comparison looked at, for the record of the same run to reuse.

    ``folders``: every folder found under the managed ones. ``signatures``: the lstat
    of each entry the last record vouched for, taken during this run (after the time
    the record is made from, so what holds for a fresh lstat holds for it). ``digests``:
    the digest of each desired content hashed.
    """

    folders: list[str] = field(default_factory=list)
    signatures: dict[str, Signature] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)

    def forget_around(self, paths: Iterable[os.PathLike[str] | str]) -> None:
        """Drop the lstat seen of ``paths`` and of every folder above them: they changed.

        A write or delete changes the file and its folder; making or pruning a folder
        changes the one above it. Those are looked at again when the run is recorded.
        """
        for path in paths:
            name = os.fspath(path)
            while name:
                self.signatures.pop(name, None)
                name = name.rpartition("/")[0]


@dataclass
class State:
    """The record of one run: inputs digest, files (signature, digest), folders, racy ones."""

    inputs: str
    # path: lstat signature, and path: content digest
    files: dict[str, Signature] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    dirs: dict[str, Signature] = field(default_factory=dict)
    racy_files: frozenset[str] = frozenset()
    # A racy folder's listing, to compare names with when its stat cannot be trusted.
    racy_dirs: dict[str, list[str]] = field(default_factory=dict)
    _children: dict[str, tuple[list[str], list[str]]] | None = field(default=None, repr=False)

    def known_digest(self, path: str, info: os.stat_result) -> str | None:
        """The recorded content digest of ``path`` if its lstat ``info`` proves it unchanged."""
        if path in self.racy_files or self.files.get(path) != _signature(info):
            return None
        return self.digests.get(path)

    def known_listing(
        self, path: str, signature: Signature | None
    ) -> tuple[list[str], list[str]] | None:
        """The files and folders in the folder ``path`` if its lstat proves them unchanged.

        ``signature`` is the folder's lstat now (``signature_of``). A folder's entries
        change only with its mtime and ctime; one that is not racy and has its recorded
        signature holds what it held when recorded: the recorded files and folders whose
        parent it is.
        """
        if signature is None or path in self.racy_dirs or self.dirs.get(path) != signature:
            return None
        if self._children is None:
            children: dict[str, tuple[list[str], list[str]]] = {}
            # Recorded paths are clean (no trailing slash): the parent is what precedes the
            # last slash (os.path.dirname does the same, more slowly, for any path).
            for name in self.files:
                children.setdefault(name.rpartition("/")[0], ([], []))[0].append(name)
            for name in self.dirs:
                children.setdefault(name.rpartition("/")[0], ([], []))[1].append(name)
            self._children = children
        return self._children.get(path, ([], []))

    def unchanged_on_disk(self, *, racy: bool = True) -> bool:
        """Whether every recorded file and folder is still as recorded (one lstat each).

        Racy entries are checked by content and listing; with ``racy`` False, any racy
        entry makes the answer False instead (the caller then compares everything and
        records again, when they are racy no longer).
        """
        if not racy and (self.racy_files or self.racy_dirs):
            return False
        if not (_same_signatures(self.files) and _same_signatures(self.dirs)):
            return False
        for path in self.racy_files:
            if not _same_content(path, self.digests.get(path)):
                return False
        for path, names in self.racy_dirs.items():
            try:
                if sorted(os.listdir(path)) != names:
                    return False
            except OSError:
                return False
        return True


def _same_signatures(recorded: Mapping[str, Signature]) -> bool:
    # The loop of a no-change run, one lstat per entry: kept free of calls but lstat's.
    lstat = os.lstat
    for path, signature in recorded.items():
        try:
            info = lstat(path)
        except OSError:
            return False
        if (
            info.st_ino,
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,
            info.st_mode,
            info.st_uid,
            info.st_gid,
        ) != signature:
            return False
    return True


def _same_content(path: str, recorded: str | None) -> bool:
    try:
        with open(path, "rb") as handle:
            return digest(handle.read()) == recorded
    except OSError:
        return False


def inputs_digest(parts: Iterable[Iterable[str]]) -> str:
    """A digest of everything the rendered files depend on: rows and settings, in order."""
    hasher = hashlib.sha256(f"v{_VERSION}".encode())
    # Row by row: one string of all the keys would cost more to build than to hash.
    for row in parts:
        hasher.update(b"\x01" + "\x00".join(row).encode("utf-8", "surrogateescape"))
    return hasher.hexdigest()


def load(path: Path) -> State | None:
    """The state recorded at ``path``, or None when there is none (or it cannot be trusted)."""
    try:
        raw = json.loads(path.read_bytes())
        if raw.get("version") != _VERSION:
            return None
        files = _entries(raw["files"], raw["file_signatures"])
        dirs = _entries(raw["dirs"], raw["dir_signatures"])
        digests = raw["digests"]
        if files is None or dirs is None or not isinstance(digests, list):
            return None
        if len(digests) != len(files) or not isinstance(raw["racy_dirs"], dict):
            return None
        state = State(
            inputs=raw["inputs"],
            files=files,
            digests=dict(zip(files, digests, strict=True)),
            dirs=dirs,
            racy_files=frozenset(raw["racy_files"]),
            racy_dirs=raw["racy_dirs"],
        )
        if not isinstance(state.inputs, str):
            return None
        return state
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        # A missing, old or damaged record only means the next run compares the slow way.
        return None


def _entries(names: Any, flat: Any) -> dict[str, Signature] | None:
    """Paths and their signatures from the record's two lists, or None if they do not pair.

    The signatures are one flat list of numbers, ``_FIELDS`` per path: JSON reads and
    writes that several times faster than a list per path, for the same values. Values
    are only ever compared with what lstat gives: one of another type compares unequal
    and sends the run the slow way, so none is converted.
    """
    if not isinstance(names, list) or not isinstance(flat, list):
        return None
    if len(flat) != len(names) * _FIELDS:
        return None
    fields = iter(flat)
    return dict(zip(names, zip(*[fields] * _FIELDS, strict=True), strict=True))


def forget(path: Path) -> None:
    """Remove the record, so that the next run compares every file."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def record(
    path: Path,
    inputs: str,
    contents: Mapping[str, bytes],
    dirs: Iterable[str],
    since: int,
    *,
    seen: Seen | None = None,
) -> None:
    """Record the files ``contents`` (path to the bytes just made sure of) and ``dirs``.

    Called only when the disk holds exactly what was rendered; an entry that vanished
    meanwhile is left out, so its absence makes the next run compare the slow way.
    ``since`` is ``filesystem_now`` from before the disk was first looked at: an entry
    changed after that (by this run, or by anyone while it ran) is racy. ``seen`` may
    hold what the comparison of this run found of some entries: their lstat (of entries
    this run did not touch since) and content digest, not taken again.
    """
    known = seen.digests if seen is not None else {}
    looked = seen.signatures if seen is not None else {}
    names: list[str] = []
    signatures: list[int] = []
    hashes: list[str] = []
    racy_files: list[str] = []
    for name, content in contents.items():
        signature = looked.get(name) or signature_of(name)
        if signature is None:
            continue
        names.append(name)
        signatures.extend(signature)
        hashes.append(known.get(name) or digest(content))
        if _racy(signature, since):
            racy_files.append(name)
    folders: list[str] = []
    folder_signatures: list[int] = []
    racy_dirs: dict[str, list[str]] = {}
    for name in dirs:
        signature = looked.get(name) or signature_of(name)
        if signature is None or not stat.S_ISDIR(signature[_MODE]):
            continue
        if _racy(signature, since):
            try:
                racy_dirs[name] = sorted(os.listdir(name))
            except OSError:
                continue
        folders.append(name)
        folder_signatures.extend(signature)
    data: dict[str, Any] = {
        "version": _VERSION,
        "inputs": inputs,
        "files": names,
        "file_signatures": signatures,
        "digests": hashes,
        "dirs": folders,
        "dir_signatures": folder_signatures,
        "racy_files": sorted(racy_files),
        "racy_dirs": racy_dirs,
    }
    write_atomic(path, json.dumps(data, separators=(",", ":")).encode(), 0o600)


def _racy(signature: Signature, since: int) -> bool:
    return max(signature[_MTIME], signature[_CTIME]) >= since


def filesystem_now(directory: Path) -> int:
    """The filesystem's own clock, at its own granularity: the mtime of a file made now.

    OSError if no file can be made in ``directory``.
    """
    fd, tmp = held_temp_file(directory, f".{STATE_NAME}.", ".tmp")
    try:
        return os.fstat(fd).st_mtime_ns
    finally:
        os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()

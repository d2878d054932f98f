"""Pure comparison of desired files with what is on disk, and the gathering of the latter."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from mailctl.errors import HostStateError
from mailctl.host.render import DesiredFile
from mailctl.host.state import Seen, State, digest, signature_of


@dataclass(frozen=True)
class ActualFile:
    """A regular file as found on disk."""

    content: bytes
    mode: int
    uid: int = -1
    gid: int = -1


@dataclass(frozen=True)
class Delete:
    """A file under a managed folder that nothing renders any more."""

    path: Path
    daemons: frozenset[str]


@dataclass(frozen=True)
class Plan:
    """What reconcile has to do: files to write, files to remove, daemons to reload."""

    writes: tuple[DesiredFile, ...]
    deletes: tuple[Delete, ...]
    daemons_to_reload: frozenset[str]

    @property
    def empty(self) -> bool:
        """True when disk already matches the desired state."""
        return not self.writes and not self.deletes


def _differs(want: DesiredFile, have: ActualFile | None) -> bool:
    if have is None:
        return True
    if have.content != want.content or have.mode != want.mode:
        return True
    if want.uid is not None and have.uid != want.uid:
        return True
    return want.gid is not None and have.gid != want.gid


def _owner(path: Path, managed_dirs: Mapping[Path, frozenset[str]]) -> frozenset[str] | None:
    for folder, daemons in managed_dirs.items():
        if path.is_relative_to(folder):
            return daemons
    return None


def plan(
    desired: Iterable[DesiredFile],
    actual: Mapping[Path, ActualFile],
    managed_dirs: Mapping[Path, frozenset[str]],
) -> Plan:
    """Decide, without touching disk, which files to write and remove and whom to reload.

    ``managed_dirs`` maps each folder whose whole content is rendered (e.g. the OpenDKIM
    key folder) to the daemons reading it; a file there that is not desired any more, such
    as the key of a removed domain, is deleted. Files outside those folders are never
    deleted, so a hand-written opendkim.conf next to the tables is safe.
    """
    wanted = {file.path: file for file in desired}
    # Sorted by parts, the order Path itself sorts in, without its slower comparisons.
    writes = tuple(
        wanted[path]
        for path in sorted(wanted, key=_parts)
        if _differs(wanted[path], actual.get(path))
    )
    deletes: list[Delete] = []
    for path in sorted(actual, key=_parts):
        if path in wanted:
            continue
        daemons = _owner(path, managed_dirs)
        if daemons is not None:
            deletes.append(Delete(path, daemons))
    reload: set[str] = set()
    for file in writes:
        reload |= file.daemons
    for gone in deletes:
        reload |= gone.daemons
    return Plan(writes=writes, deletes=tuple(deletes), daemons_to_reload=frozenset(reload))


def _parts(path: Path) -> tuple[str, ...]:
    return path.parts


def read_file(path: Path, *, follow_links: bool = False) -> ActualFile | None:
    """The regular file at ``path`` as it is now, or None if there is none.

    Without ``follow_links``, a symlink or anything else where a file should be is
    treated as missing: a write then replaces the link itself, never the file it points
    to. With it, a link to a file counts as that file. HostStateError if it cannot be read.
    """
    try:
        info = path.stat() if follow_links else path.lstat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise HostStateError(f"Cannot inspect {path}: {exc.strerror or exc}.") from exc
    if not stat.S_ISREG(info.st_mode):
        return None
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise HostStateError(f"Cannot read {path}: {exc.strerror or exc}.") from exc
    return ActualFile(content, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)


def read_actual(
    desired: Iterable[DesiredFile],
    managed_dirs: Iterable[Path],
    known: State | None = None,
    seen: Seen | None = None,
) -> dict[Path, ActualFile]:
    """Gather from disk every desired path that exists and every file under managed folders.

    With ``known`` (what the last run recorded), a desired file whose lstat is as
    recorded and whose recorded digest is that of the desired bytes is not read: it
    holds those bytes. Every other file is read whole. ``seen``, if given, receives
    every folder found under the managed ones, and what was looked at on the way: the
    lstat of each file and folder ``known`` vouched for, the digest of each desired
    content hashed (so that a record of this run need not do either again).
    """
    found: dict[Path, ActualFile] = {}
    wanted = {os.fspath(file.path): file for file in desired}
    paths: dict[str, Path | None] = {name: file.path for name, file in wanted.items()}
    for folder in managed_dirs:
        for top, files in _walk(os.fspath(folder), known, seen):
            if seen is not None:
                seen.folders.append(top)
            for name in files:
                paths.setdefault(name, None)
    for name in sorted(paths):
        path = paths[name] or Path(name)
        want = wanted.get(name)
        if known is not None and want is not None:
            have = _known_file(name, want, known, seen)
            if have is not None:
                found[path] = have
                continue
        have = read_file(path)
        if have is not None:
            found[path] = have
    return found


def _walk(folder: str, known: State | None, seen: Seen | None) -> Iterator[tuple[str, list[str]]]:
    """Each folder under ``folder`` (itself included) with the paths of what is in it
    that is not a folder, as os.walk finds them; a folder that ``known`` proves
    unchanged is not listed again (and its lstat goes to ``seen``)."""
    stack = [folder]
    while stack:
        top = stack.pop()
        listing = None
        if known is not None:
            signature = signature_of(top)
            listing = known.known_listing(top, signature)
            if listing is not None and seen is not None and signature is not None:
                seen.signatures[top] = signature
        if listing is not None:
            files, folders = listing
            yield top, files
            stack.extend(reversed(folders))
            continue
        files = []
        folders = []
        try:
            with os.scandir(top) as entries:
                for entry in entries:
                    # Links are not followed, so a link planted in a managed folder cannot
                    # make reconcile read or delete anything outside it.
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(entry.path)
                    elif not _is_dir_link(entry):
                        files.append(entry.path)
        except OSError:
            continue  # gone meanwhile, or unreadable: as os.walk, skipped
        yield top, files
        stack.extend(reversed(folders))


def _is_dir_link(entry: os.DirEntry[str]) -> bool:
    # os.walk counts a link to a folder as a folder (and does not follow it).
    try:
        return entry.is_symlink() and entry.is_dir()
    except OSError:
        return False


def _known_file(name: str, want: DesiredFile, known: State, seen: Seen | None) -> ActualFile | None:
    try:
        info = os.lstat(name)
    except OSError:
        return None
    recorded = known.known_digest(name, info)
    if recorded is None or not stat.S_ISREG(info.st_mode):
        return None
    wanted = digest(want.content)
    if seen is not None:
        seen.digests[name] = wanted
    if recorded != wanted:
        return None
    if seen is not None:
        seen.signatures[name] = known.files[name]
    # The file is as recorded, and what was recorded is what we want: the same bytes.
    return ActualFile(want.content, stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid)

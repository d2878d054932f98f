"""Changing daemon files so that they can be put back: the one apply-with-rollback engine.

Reconcile and setup both write through ``FileChanges``: each write or delete remembers
what the path held before and which daemons read it. When a write fails half-way, when
a daemon refuses its new files on reload (reconcile), or when a daemon's own check
refuses the new configuration (setup), the caller puts back everything, or only the
files of the daemons that refused, and the daemons find on disk what they ran with.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailctl.errors import HostStateError
from mailctl.host.fs import PendingWrite, ensure_dir, write_atomic, write_atomic_batch
from mailctl.host.plan import ActualFile
from mailctl.host.render import DesiredFile


def ensure_parent(
    path: Path,
    file_mode: int,
    uid: int | None = None,
    gid: int | None = None,
    *,
    folder_mode: int | None = None,
) -> None:
    """Create the folder of ``path`` if missing.

    By default a private file (nothing for group and others) gets a folder closed to
    others, owned like the file; ``folder_mode`` asks for a given mode instead, and then
    the folder keeps the owner of whoever runs mailctl.
    """
    parent = path.parent
    mode = folder_mode
    if mode is None:
        mode = 0o750 if file_mode & 0o077 == 0 else 0o755
    try:
        # The common case, a new folder in an existing one, in one call; the mode given
        # here is narrowed by the umask, so it is set below.
        os.mkdir(parent, 0o700)
    except OSError:
        if parent.is_dir():
            return
        ensure_dir(parent, mode)
    else:
        try:
            os.chmod(parent, mode)
        except OSError as exc:
            raise HostStateError(f"Cannot create directory {parent}: {exc.strerror}.") from exc
    if folder_mode is None and (uid is not None or gid is not None):
        try:
            os.chown(parent, -1 if uid is None else uid, -1 if gid is None else gid)
        except OSError as exc:
            raise HostStateError(f"Cannot hand {parent} over: {exc.strerror or exc}.") from exc


def put_back(path: Path, before: ActualFile | None) -> None:
    """Make ``path`` what it was: ``before``'s bytes, mode and owner, or no file at all."""
    if before is None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    ensure_parent(path, before.mode)
    write_atomic(path, before.content, before.mode, before.uid, before.gid)


@dataclass(frozen=True)
class _Change:
    path: Path
    before: ActualFile | None
    daemons: frozenset[str]
    deleted: bool


class FileChanges:
    """The files one apply changed, each with what it held before and who reads it."""

    def __init__(self) -> None:
        self._changes: list[_Change] = []

    @property
    def written(self) -> tuple[Path, ...]:
        """The paths written, in the order they were written."""
        return tuple(change.path for change in self._changes if not change.deleted)

    @property
    def deleted(self) -> tuple[Path, ...]:
        """The paths deleted, in the order they were deleted."""
        return tuple(change.path for change in self._changes if change.deleted)

    def write(
        self,
        path: Path,
        content: bytes,
        mode: int,
        uid: int | None = None,
        gid: int | None = None,
        *,
        before: ActualFile | None,
        daemons: Collection[str],
        folder_mode: int | None = None,
    ) -> None:
        """Replace ``path`` atomically; ``before`` is what it held (None: no file).

        A missing folder is created as ``ensure_parent`` says. HostStateError if the
        write fails; the path then still holds ``before``.
        """
        ensure_parent(path, mode, uid, gid, folder_mode=folder_mode)
        write_atomic(path, content, mode, uid, gid)
        self._changes.append(_Change(path, before, frozenset(daemons), deleted=False))

    def write_many(
        self,
        files: Sequence[DesiredFile],
        before: Mapping[Path, ActualFile],
    ) -> None:
        """``write`` for many files, flushed to disk together (see ``write_atomic_batch``).

        ``before`` holds what each path held (missing: no file). HostStateError if a write
        fails; the files written until then are recorded, to be put back.
        """

        def prepare(item: PendingWrite) -> None:
            folder = os.fspath(item.path.parent)
            if folder not in ready:
                ensure_parent(item.path, item.mode, item.uid, item.gid)
                ready.add(folder)

        def written(item: PendingWrite) -> None:
            change = _Change(item.path, before.get(item.path), daemons[item.path], deleted=False)
            self._changes.append(change)

        ready: set[str] = set()
        daemons = {file.path: file.daemons for file in files}
        pending = [PendingWrite(f.path, f.content, f.mode, f.uid, f.gid) for f in files]
        write_atomic_batch(pending, written, prepare)

    def delete(self, path: Path, *, before: ActualFile | None, daemons: Collection[str]) -> None:
        """Remove ``path`` (gone already is fine); ``before`` is what it held."""
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise HostStateError(f"Cannot remove {path}: {exc.strerror or exc}.") from exc
        self._changes.append(_Change(path, before, frozenset(daemons), deleted=True))

    def put_back(self, daemons: Collection[str] | None = None) -> tuple[list[Path], set[str]]:
        """Put back every change, or only those of files one of ``daemons`` reads.

        Returns the paths put back, and the other daemons that read them: those hold
        the new version if they were reloaded, and need a reload onto the old one.
        HostStateError if a file cannot be put back.
        """
        restored: list[Path] = []
        sharing: set[str] = set()
        for change in self._changes:
            if daemons is not None and not change.daemons & set(daemons):
                continue
            put_back(change.path, change.before)
            restored.append(change.path)
            if daemons is not None:
                sharing |= change.daemons - set(daemons)
        return restored, sharing

    def put_back_all_quietly(self) -> None:
        """Put back what can be, after a failure that is reported on its own."""
        for change in self._changes:
            with contextlib.suppress(HostStateError, OSError):
                put_back(change.path, change.before)

    @contextlib.contextmanager
    def undone_on_failure(self) -> Iterator[FileChanges]:
        """Within the block, a HostStateError puts back every change made so far."""
        try:
            yield self
        except HostStateError:
            self.put_back_all_quietly()
            raise

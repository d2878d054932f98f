"""Filesystem primitives for the host: atomic file writes, owned directories, root checks, locks."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mailctl.errors import ConflictError, HostStateError

_LOCK_POLL_SECONDS = 0.05


def fsync_dir(directory: Path) -> None:
    """Flush ``directory``'s entries to disk, after a rename or a new file in it.

    The rename lives in the directory entry; without this a crash can bring back the old
    name (or none) even though the new file's data reached the disk.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(
    path: Path,
    data: bytes,
    mode: int = 0o644,
    uid: int | None = None,
    gid: int | None = None,
) -> None:
    """Replace ``path`` with ``data`` so that readers see the old file or the new, never half.

    The bytes go to a temporary sibling (same filesystem, so the rename is atomic), are
    flushed to disk, get ``mode`` (whatever the umask) and owner, and then replace the old
    file. On any failure the temporary file is removed, the old file is left as it was, and
    HostStateError is raised.
    """
    write_atomic_chunks(path, (data,), mode, uid, gid)


def write_atomic_chunks(
    path: Path,
    chunks: Iterable[bytes],
    mode: int = 0o644,
    uid: int | None = None,
    gid: int | None = None,
    *,
    what: str | None = None,
) -> int:
    """``write_atomic`` for data that comes in chunks (an archive as it is made).

    Returns the number of bytes written. ``what`` names the file in the message of the
    HostStateError raised on failure (default: its path). An exception raised while the
    chunks are made leaves the old file as it was, removes the temporary one, and is
    raised as it is.
    """
    directory = path.parent
    try:
        # mkstemp creates the file 0600, so a private key is never readable by others,
        # not even for the moment before fchmod.
        fd, tmp = held_temp_file(directory, f".{path.name}.", ".tmp")
    except OSError as exc:
        raise HostStateError(f"Cannot create a file in {directory}: {exc.strerror}.") from exc
    size = 0
    try:
        # The descriptor stays open (and the temporary file locked) until it is renamed.
        with os.fdopen(fd, "wb", closefd=False) as handle:
            for chunk in chunks:
                handle.write(chunk)
                size += len(chunk)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(handle.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync_dir(directory)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise HostStateError(f"Cannot write {what or path}: {exc.strerror or exc}.") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    finally:
        os.close(fd)
    return size


def move(source: Path, destination: Path) -> None:
    """Rename ``source`` to ``destination``, copying when they lie on two filesystems.

    The trash, an import's staging folder and the mail root may sit on different
    filesystems on a real host; the copy keeps modification times. OSError on failure.
    """
    try:
        os.rename(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        shutil.move(str(source), str(destination))


def ensure_dir(path: Path, mode: int = 0o755) -> Path:
    """Create ``path`` (and its parents) if missing and give it ``mode``, whatever the umask.

    Missing parents get 0755: mailctl runs under umask 077, and a daemon must be able to
    walk down to the folders rendered for it.
    """
    try:
        missing = [folder for folder in (path, *path.parents) if not folder.exists()]
        for folder in reversed(missing[1:]):
            folder.mkdir(exist_ok=True)
            os.chmod(folder, 0o755)  # noqa: S103 - parents a daemon walks through
        path.mkdir(exist_ok=True)
        os.chmod(path, mode)
    except OSError as exc:
        raise HostStateError(f"Cannot create directory {path}: {exc.strerror or exc}.") from exc
    return path


def inside(root: Path, path: Path) -> Path:
    """Return ``path`` resolved, or raise HostStateError if it lies outside ``root``.

    Symbolic links are followed before the check, so a link inside the root that points
    elsewhere counts as outside. A relative ``path`` is taken relative to ``root``.
    """
    real_root = root.resolve()
    real = (root / path).resolve()
    if real != real_root and not real.is_relative_to(real_root):
        raise HostStateError(f"Refusing to touch {path}: it lies outside {root}.")
    return real


@contextlib.contextmanager
def locked(
    path: Path,
    timeout: float = 60.0,
    *,
    shared: bool = False,
    busy: str = "Another reconcile is running on this host; try again later.",
) -> Iterator[None]:
    """Hold a lock on ``path`` for the block; ConflictError(``busy``) after ``timeout`` s.

    The lock is exclusive unless ``shared``: shared holders run together and keep an
    exclusive one out. flock locks belong to the open file and vanish when the process
    dies, so a crashed reconcile never leaves a stale lock behind the way a pid file would.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise HostStateError(f"Cannot open lock file {path}: {exc.strerror or exc}.") from exc
    try:
        deadline = time.monotonic() + timeout
        kind = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        while True:
            try:
                fcntl.flock(fd, kind | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConflictError(busy) from None
                time.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# Scratch files and folders of one operation (an upload, an import's staging folder, the
# temporary sibling of an atomic write) are locked by their owner with flock on the item
# itself for as long as it lives. A process killed with -9 loses its locks at once, so
# a clean-up can tell a live operation's scratch from a dead one's without pid files,
# and several processes sharing one data folder never remove each other's work.


def _hold(fd: int) -> bool:
    # Locked after creation: a clean-up may have removed the item in between (it removes
    # only while holding the lock). A removed item has no link left; the owner starts over.
    fcntl.flock(fd, fcntl.LOCK_EX)
    return os.fstat(fd).st_nlink > 0


def held_temp_file(directory: Path, prefix: str, suffix: str) -> tuple[int, Path]:
    """A new 0600 file in ``directory``, locked by its (returned) descriptor until closed.

    OSError if it cannot be created.
    """
    while True:
        fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
        if _hold(fd):
            return fd, Path(name)
        os.close(fd)


def held_temp_dir(directory: Path, prefix: str) -> tuple[int, Path]:
    """A new 0700 folder in ``directory`` and a descriptor that keeps it locked until closed.

    OSError if it cannot be created.
    """
    while True:
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=directory))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        if _hold(fd):
            return fd, path
        os.close(fd)


@dataclass(frozen=True)
class Removal:
    """What ``remove_abandoned`` did: removed ``size`` bytes, or found it held, or gone."""

    removed: bool
    held: bool = False
    size: int = 0


def tree_size(path: Path) -> int:
    """Bytes in the files under ``path`` (or of the file ``path``); links are not followed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(info.st_mode):
        return info.st_size
    total = 0
    for dirpath, _dirnames, filenames in os.walk(path):
        for name in filenames:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(dirpath, name)).st_size
    return total


def remove_abandoned(path: Path) -> Removal:
    """Remove the scratch file or folder ``path`` unless a live process holds its lock.

    The lock is held while removing, so its owner (see ``held_temp_file``) either kept it
    all along or finds it gone and makes another. HostStateError if it cannot be removed.
    """
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return Removal(removed=False)
    try:
        if stat.S_ISLNK(info.st_mode):
            path.unlink()  # nothing of ours is a link; never follow it
            return Removal(removed=True)
        is_dir = stat.S_ISDIR(info.st_mode)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_DIRECTORY if is_dir else 0)
        fd = os.open(path, flags)
    except FileNotFoundError:
        return Removal(removed=False)
    except OSError as exc:
        raise HostStateError(f"Cannot remove {path}: {exc.strerror or exc}.") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return Removal(removed=False, held=True)
        if os.fstat(fd).st_nlink == 0:
            return Removal(removed=False)  # another clean-up was quicker
        size = tree_size(path)
        if is_dir:
            # rmtree works on directory descriptors and never follows a link inside.
            shutil.rmtree(path)
        else:
            path.unlink()
        return Removal(removed=True, size=size)
    except FileNotFoundError:
        return Removal(removed=False)
    except OSError as exc:
        raise HostStateError(f"Cannot remove {path}: {exc.strerror or exc}.") from exc
    finally:
        os.close(fd)

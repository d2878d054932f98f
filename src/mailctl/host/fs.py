"""Filesystem primitives for the host: atomic file writes, owned directories, root checks, locks."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
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


# A batch of atomic writes holds one descriptor per temporary file until it is renamed
# (that keeps it locked, see held_temp_file); this many at a time stays far below the
# usual limit of 1,024 open files.
BATCH_FILES = 256


@dataclass(frozen=True)
class PendingWrite:
    """One file of ``write_atomic_batch``: its path, bytes, mode and owner."""

    path: Path
    data: bytes
    mode: int
    uid: int | None = None
    gid: int | None = None


def _load_syncfs() -> Callable[[int], int] | None:
    # syncfs(2) flushes one filesystem, data and metadata, in one call. Python has no
    # wrapper for it, so it comes from the C library; elsewhere each file is fsynced.
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        function: Callable[[int], int] = libc.syncfs
    except (OSError, AttributeError):
        return None
    return function


_SYNCFS = _load_syncfs()


def _sync_all(fds: Sequence[int]) -> None:
    """Flush the files open on ``fds`` (and their folders) to disk; OSError on failure."""
    if _SYNCFS is not None:
        # One call per filesystem the files are on.
        devices: dict[int, int] = {}
        for fd in fds:
            devices.setdefault(os.fstat(fd).st_dev, fd)
        if all(_syncfs(fd) for fd in devices.values()):
            return
    for fd in fds:
        os.fsync(fd)


def _syncfs(fd: int) -> bool:
    """syncfs(2) on ``fd``'s filesystem; False where the system cannot, OSError on failure."""
    if _SYNCFS is None:
        return False
    if _SYNCFS(fd) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EPERM):
        return False
    raise OSError(error, os.strerror(error))


def write_atomic_batch(
    writes: Sequence[PendingWrite],
    written: Callable[[PendingWrite], None],
    prepare: Callable[[PendingWrite], None] | None = None,
) -> None:
    """``write_atomic`` for many files at once, with one flush per batch, not two per file.

    Each file still goes to a locked temporary sibling with its mode and owner and is
    renamed over the old one, so readers see the old file or the new, never half; but
    the temporary files of a batch are flushed together, before any of them is renamed,
    and the renames once at the end (``syncfs`` of each filesystem involved, where the
    system has it; else each file and folder is fsynced). ``prepare`` runs before each
    file (to create its folder); ``written`` is called after each rename. On failure the
    temporary files are removed and HostStateError raised; the files renamed so far
    (those ``written`` was told of) stay renamed.
    """
    folders: dict[str, None] = {}
    for start in range(0, len(writes), BATCH_FILES):
        batch = writes[start : start + BATCH_FILES]
        held: list[tuple[int, Path, PendingWrite]] = []
        try:
            for item in batch:
                if prepare is not None:
                    prepare(item)
                held.append(_write_temp(item))
            try:
                _sync_all([fd for fd, _tmp, _item in held])
            except OSError as exc:
                raise HostStateError(f"Cannot write {batch[0].path}: {exc.strerror}.") from exc
            while held:
                fd, tmp, item = held[0]
                try:
                    os.replace(tmp, item.path)
                except OSError as exc:
                    raise HostStateError(f"Cannot write {item.path}: {exc.strerror}.") from exc
                held.pop(0)
                os.close(fd)
                folders[os.path.dirname(tmp)] = None
                written(item)
        finally:
            for fd, tmp, _item in held:
                with contextlib.suppress(FileNotFoundError):
                    tmp.unlink()
                os.close(fd)
    _sync_folders(list(folders))


def _write_temp(item: PendingWrite) -> tuple[int, Path, PendingWrite]:
    target = os.fspath(item.path)
    directory, name = os.path.split(target)
    try:
        fd, tmp = _held_sibling(directory, name)
    except OSError as exc:
        raise HostStateError(f"Cannot create a file in {directory}: {exc.strerror}.") from exc
    try:
        view = memoryview(item.data)
        while view:
            view = view[os.write(fd, view) :]
        os.fchmod(fd, item.mode)
        if item.uid is not None or item.gid is not None:
            uid, gid = -1 if item.uid is None else item.uid, -1 if item.gid is None else item.gid
            os.fchown(fd, uid, gid)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        os.close(fd)
        raise HostStateError(f"Cannot write {item.path}: {exc.strerror or exc}.") from exc
    return fd, Path(tmp), item


_TEMP_LETTERS = "abcdefghijklmnopqrstuvwxyz0123456789_"


def _held_sibling(directory: str, name: str) -> tuple[int, str]:
    """``held_temp_file`` for a sibling of ``name``, named as mkstemp names them, for less.

    mkstemp costs more than the rest of a small write; the name is the same shape
    (``.<name>.<8 random characters>.tmp``), so clean-ups recognise it. OSError on failure.
    """
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    while True:
        token = "".join(_TEMP_LETTERS[b % len(_TEMP_LETTERS)] for b in os.urandom(8))
        tmp = f"{directory}/.{name}.{token}.tmp"
        try:
            fd = os.open(tmp, flags, 0o600)
        except FileExistsError:
            continue
        if _hold(fd):
            return fd, tmp
        os.close(fd)


def _sync_folders(folders: Sequence[str]) -> None:
    try:
        if _SYNCFS is not None:
            devices: dict[int, str] = {}
            for folder in folders:
                devices.setdefault(os.lstat(folder).st_dev, folder)
            synced = True
            for folder in devices.values():
                fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                try:
                    synced = _syncfs(fd) and synced
                finally:
                    os.close(fd)
            if synced:
                return
        for folder in folders:
            fsync_dir(Path(folder))
    except OSError as exc:
        raise HostStateError(f"Cannot flush {folders[0]}: {exc.strerror or exc}.") from exc


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
        # The common case, a new folder in an existing one, in two system calls.
        os.mkdir(path)
    except OSError:
        pass
    else:
        try:
            os.chmod(path, mode)
        except OSError as exc:
            raise HostStateError(f"Cannot create directory {path}: {exc.strerror}.") from exc
        return path
    try:
        missing = [folder for folder in (path, *path.parents) if not folder.exists()]
        for folder in reversed(missing[1:]):
            folder.mkdir(exist_ok=True)
            os.chmod(folder, 0o755)  # noqa: S103 - parents a daemon walks through
        path.mkdir(exist_ok=True)
        # Only when it differs: a chmod changes the folder's ctime, which tells reconcile
        # that the folder may have changed (see host.state).
        if stat.S_IMODE(path.stat().st_mode) != mode:
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

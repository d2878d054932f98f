"""Filesystem primitives for the host: atomic file writes, owned directories, root checks, locks."""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from mailctl.errors import ConflictError, HostStateError

_LOCK_POLL_SECONDS = 0.05


def _fsync_dir(directory: Path) -> None:
    # The rename lives in the directory entry; without this a crash can bring back the old
    # name (or none) even though the new file's data reached the disk.
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
    directory = path.parent
    try:
        # mkstemp creates the file 0600, so a private key is never readable by others,
        # not even for the moment before fchmod.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise HostStateError(f"Cannot create a file in {directory}: {exc.strerror}.") from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fchmod(handle.fileno(), mode)
            if uid is not None or gid is not None:
                os.fchown(handle.fileno(), -1 if uid is None else uid, -1 if gid is None else gid)
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        _fsync_dir(directory)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise HostStateError(f"Cannot write {path}: {exc.strerror or exc}.") from exc
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


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
        raise HostStateError(f"The path {path} lies outside {root}.")
    return real


@contextlib.contextmanager
def locked(path: Path, timeout: float = 60.0) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the block; ConflictError after ``timeout`` s.

    flock locks belong to the open file and vanish when the process dies, so a crashed
    reconcile never leaves a stale lock behind the way a pid file would.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise HostStateError(f"Cannot open lock file {path}: {exc.strerror or exc}.") from exc
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ConflictError(
                        "Another reconcile is running on this host; try again later."
                    ) from None
                time.sleep(_LOCK_POLL_SECONDS)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)

"""A real small filesystem (tmpfs) that a test can fill up and free again; needs root.

It is mounted below the repository's ``.test-mounts/`` (not below /tmp, which may itself
be a tmpfs or have other mount options on a CI machine) and unmounted at the end.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MOUNTS = Path(__file__).resolve().parent.parent / ".test-mounts"


@contextmanager
def small_disk(size_mib: int = 8, inodes: int = 4000) -> Iterator[Path]:
    """Mount a tmpfs of ``size_mib`` MiB and ``inodes`` files; yield its folder."""
    MOUNTS.mkdir(mode=0o700, exist_ok=True)
    point = Path(tempfile.mkdtemp(prefix="disk-", dir=MOUNTS))
    options = f"size={size_mib}m,nr_inodes={inodes},mode=0700"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(point)], check=True)
    try:
        yield point
    finally:
        done = subprocess.run(["umount", str(point)], check=False, capture_output=True)
        if done.returncode != 0:  # something still holds a file open: detach it anyway
            subprocess.run(["umount", "--lazy", str(point)], check=True)
        point.rmdir()


class Filler:
    """Fills a filesystem completely (bytes and inodes) and frees it again."""

    def __init__(self, root: Path) -> None:
        self.folder = root / "filler"
        self.bytes = 0
        self.files = 0

    def fill(self) -> None:
        """Use up every free inode, then every free byte; ENOSPC ends each."""
        self.folder.mkdir()
        # The file that takes the bytes needs an inode of its own: open it first.
        with open(self.folder / "bytes", "wb", buffering=0) as big:
            while True:
                try:
                    (self.folder / f"inode-{self.files}").touch()
                except OSError as exc:
                    assert exc.errno == errno.ENOSPC, exc
                    break
                self.files += 1
            for chunk in (1024 * 1024, 4096, 1):
                block = b"\0" * chunk
                while True:
                    try:
                        self.bytes += big.write(block) or 0
                    except OSError as exc:
                        assert exc.errno == errno.ENOSPC, exc
                        break
            with contextlib.suppress(OSError):
                os.fsync(big.fileno())

    def free(self) -> None:
        """Give every byte and inode back."""
        shutil.rmtree(self.folder)

"""Maildirs on disk: create them, and move them to the trash instead of deleting them."""

from __future__ import annotations

import errno
import json
import os
import secrets
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailctl.errors import HostStateError

MANIFEST = "manifest.json"
DATA = "data"


@dataclass(frozen=True)
class TrashEntry:
    """One deleted mailbox or domain in the trash: its folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def data_path(self) -> Path:
        return self.path / DATA


def _resolved_inside(root: Path, path: Path) -> Path:
    """Resolve ``path`` and refuse it unless it stays under ``root`` (symlinks included)."""
    real_root = root.resolve()
    real = path.resolve()
    if real != real_root and real_root not in real.parents:
        raise HostStateError(f"Refusing to touch {path}: it is outside {root}.")
    return real


class Maildirs:
    """The mail root ``{mail_root}/{domain}/{local_part}/`` and the trash beside it.

    Names reaching this class are already validated and normalised (see
    ``mailctl.domain.names``); every path is still checked to resolve inside its root,
    so a symlink planted in the mail root cannot send a move or a delete elsewhere.
    """

    def __init__(
        self, mail_root: Path, trash_root: Path, uid: int | None = None, gid: int | None = None
    ) -> None:
        self.mail_root = mail_root
        self.trash_root = trash_root
        self.uid = uid
        self.gid = gid

    def domain_path(self, domain: str) -> Path:
        return self._checked(self.mail_root / domain)

    def mailbox_path(self, domain: str, local_part: str) -> Path:
        return self._checked(self.mail_root / domain / local_part)

    def _checked(self, path: Path) -> Path:
        if path.name in ("", ".", "..") or "/" in path.name:
            raise HostStateError(f"Refusing the path component {path.name!r}.")
        self.mail_root.mkdir(parents=True, exist_ok=True)
        _resolved_inside(self.mail_root, path)
        return path

    def _own(self, path: Path) -> None:
        if self.uid is not None or self.gid is not None:
            os.chown(
                path,
                self.uid if self.uid is not None else -1,
                self.gid if self.gid is not None else -1,
            )

    def create_mailbox(self, domain: str, local_part: str) -> Path:
        """Create the maildir (``cur``, ``new``, ``tmp``), owned by the mail user; idempotent."""
        domain_dir = self.domain_path(domain)
        mailbox = self.mailbox_path(domain, local_part)
        try:
            for directory, mode in ((domain_dir, 0o750), (mailbox, 0o700)):
                if not directory.exists():
                    directory.mkdir(mode=mode)
                    os.chmod(directory, mode)
                    self._own(directory)
            for sub in ("cur", "new", "tmp"):
                path = mailbox / sub
                if not path.exists():
                    path.mkdir(mode=0o700)
                    os.chmod(path, 0o700)
                    self._own(path)
        except OSError as exc:
            raise HostStateError(
                f"Could not create the maildir {mailbox}: {exc.strerror}."
            ) from exc
        return mailbox

    def remove_empty_mailbox(self, domain: str, local_part: str) -> None:
        """Undo ``create_mailbox`` for a mailbox that never received mail."""
        mailbox = self.mailbox_path(domain, local_part)
        try:
            for sub in ("cur", "new", "tmp"):
                (mailbox / sub).rmdir()
            mailbox.rmdir()
        except OSError:
            pass  # not empty or already gone: leave it, never delete mail

    def move_to_trash(
        self, kind: str, target: str, source: Path | None, manifest: dict[str, Any]
    ) -> TrashEntry:
        """Move ``source`` (if it exists) into a new trash folder with a manifest."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        entry_dir = self.trash_root / f"{stamp}-{kind}-{target}-{secrets.token_hex(4)}"
        full_manifest = {
            "kind": kind,
            "target": target,
            "deleted_at": datetime.now(UTC).isoformat(),
            "original_path": str(source) if source is not None else None,
            "has_data": False,
            **manifest,
        }
        try:
            entry_dir.mkdir(parents=True, mode=0o700)
            if source is not None and source.exists():
                _resolved_inside(self.mail_root, source)
                _move(source, entry_dir / DATA)
                full_manifest["has_data"] = True
            tmp = entry_dir / f".{MANIFEST}.tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(full_manifest, handle, indent=2, sort_keys=True)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, entry_dir / MANIFEST)
        except OSError as exc:
            raise HostStateError(f"Could not move {target} to the trash: {exc.strerror}.") from exc
        return TrashEntry(entry_dir, full_manifest)

    def restore_from_trash(self, entry: TrashEntry, destination: Path) -> None:
        """Move a trashed maildir back to ``destination`` and drop the trash folder."""
        if destination.exists():
            raise HostStateError(f"Cannot restore into {destination}: it exists already.")
        try:
            if entry.data_path.exists():
                destination.parent.mkdir(parents=True, exist_ok=True)
                _move(entry.data_path, destination)
            shutil.rmtree(entry.path)
        except OSError as exc:
            raise HostStateError(f"Could not restore from the trash: {exc.strerror}.") from exc


def _move(source: Path, destination: Path) -> None:
    try:
        os.rename(source, destination)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        # The trash may live on another filesystem than the mail root on a real host.
        shutil.move(str(source), str(destination))

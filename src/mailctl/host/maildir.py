"""Maildirs on disk: create them, and move them to the trash instead of deleting them."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailctl.domain.numbers import loads_limited
from mailctl.errors import HostStateError, InvalidInputError, NotFoundError
from mailctl.host.fs import inside, locked, move, write_atomic

MANIFEST = "manifest.json"
DATA = "data"
# A delete's trash folder is hidden under this prefix until the delete is committed, so
# a delete killed half-way is told apart from a finished one (see ``settle``).
PENDING = ".pending-"
# Held shared while maildirs and their rows change together (create, delete, import,
# restore), and exclusive by the start-up clean-up that compares them. It lives in the
# data folder (the context says where); beside the trash only when none is given.
CHANGES_LOCK = ".maildirs.lock"
CHANGES_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class TrashEntry:
    """One deleted mailbox or domain in the trash: its folder and its manifest."""

    path: Path
    manifest: dict[str, Any]

    @property
    def data_path(self) -> Path:
        return self.path / DATA


class Maildirs:
    """The mail root ``{mail_root}/{domain}/{local_part}/`` and the trash beside it.

    Names reaching this class are already validated and normalised (see
    ``mailctl.domain.names``); every path is still checked to resolve inside its root,
    so a symlink planted in the mail root cannot send a move or a delete elsewhere.
    """

    def __init__(
        self,
        mail_root: Path,
        trash_root: Path,
        uid: int | None = None,
        gid: int | None = None,
        lock_path: Path | None = None,
    ) -> None:
        self.mail_root = mail_root
        self.trash_root = trash_root
        self.uid = uid
        self.gid = gid
        self.lock_path = lock_path

    def domain_path(self, domain: str) -> Path:
        return self._checked(self.mail_root / domain)

    def mailbox_path(self, domain: str, local_part: str) -> Path:
        return self._checked(self.mail_root / domain / local_part)

    def _checked(self, path: Path) -> Path:
        if path.name in ("", ".", "..") or "/" in path.name:
            raise HostStateError(f"Refusing the path component {path.name!r}.")
        self._make_mail_root()
        inside(self.mail_root, path)
        return path

    @contextlib.contextmanager
    def changing(
        self, *, exclusive: bool = False, timeout: float = CHANGES_WAIT_SECONDS
    ) -> Iterator[None]:
        """Hold the lock under which maildirs and their database rows change together.

        Creates, deletes, imports and restores hold it shared, from their first change on
        disk to their commit; the start-up clean-up holds it exclusive, so it never sees
        a maildir whose row is being written, or a delete half-way, of a live process.
        ConflictError after ``timeout`` seconds.
        """
        lock = self.lock_path or self.trash_root / CHANGES_LOCK
        if not lock.parent.is_dir():
            try:
                lock.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
            except OSError as exc:
                raise HostStateError(f"Cannot create {lock.parent}: {exc.strerror}.") from exc
        with locked(
            lock,
            timeout,
            shared=not exclusive,
            busy="Another process is changing the maildirs; try again later.",
        ):
            yield

    def _make_trash_root(self) -> None:
        if not self.trash_root.is_dir():
            try:
                # Deleted rows in the manifests hold password hashes and DKIM keys.
                self.trash_root.mkdir(parents=True, mode=0o700, exist_ok=True)
                os.chmod(self.trash_root, 0o700)
            except OSError as exc:
                raise HostStateError(
                    f"Cannot create the trash {self.trash_root}: {exc.strerror}."
                ) from exc

    def _make_mail_root(self) -> None:
        # 0755 whatever the umask: the mail user walks through it to its maildirs.
        if not self.mail_root.is_dir():
            self.mail_root.mkdir(parents=True, exist_ok=True)
            os.chmod(self.mail_root, 0o755)  # noqa: S103 - the mail user walks it

    def _make_parent(self, destination: Path) -> None:
        """Create the folders above a maildir being restored, as create_mailbox would."""
        self._make_mail_root()
        parent = destination.parent
        if parent != self.mail_root and not parent.exists():
            parent.mkdir(mode=0o750)
            os.chmod(parent, 0o750)  # noqa: S103 - as create_mailbox makes it
            self._own(parent)

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

    def create_mailboxes(self, domain: str, local_parts: Sequence[str]) -> list[str]:
        """``create_mailbox`` for many mailboxes of one domain; the local parts whose
        maildir this made (the others existed). On failure it removes what it made.

        The domain folder is checked once. A new mailbox folder is made by mkdir, which
        fails on any name already there (a planted symlink included) rather than follow
        it; a folder that exists takes ``create_mailbox``'s careful path.
        """
        domain_path = self.domain_path(domain)
        domain_dir = str(domain_path)
        made: list[str] = []
        try:
            if not domain_path.exists():
                domain_path.mkdir(mode=0o750)
                os.chmod(domain_path, 0o750)  # noqa: S103 - as create_mailbox makes it
                self._own(domain_path)
            for local_part in local_parts:
                if local_part in ("", ".", "..") or "/" in local_part:
                    raise HostStateError(f"Refusing the path component {local_part!r}.")
                mailbox = os.path.join(domain_dir, local_part)
                try:
                    self._make_private_dir(mailbox)
                except FileExistsError:
                    self.create_mailbox(domain, local_part)
                    continue
                made.append(local_part)
                for sub in ("cur", "new", "tmp"):
                    self._make_private_dir(os.path.join(mailbox, sub))
        except OSError as exc:
            self._remove_made(domain, made)
            raise HostStateError(
                f"Could not create a maildir in {domain_dir}: {exc.strerror}."
            ) from exc
        except HostStateError:
            self._remove_made(domain, made)
            raise
        return made

    def _remove_made(self, domain: str, local_parts: Sequence[str]) -> None:
        for local_part in local_parts:
            self.remove_empty_mailbox(domain, local_part)

    def _make_private_dir(self, path: str) -> None:
        """mkdir ``path`` 0700 whatever the umask, owned by the mail user."""
        os.mkdir(path, 0o700)
        os.chmod(path, 0o700)
        if self.uid is not None or self.gid is not None:
            os.chown(
                path,
                self.uid if self.uid is not None else -1,
                self.gid if self.gid is not None else -1,
            )

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
        self,
        kind: str,
        target: str,
        source: Path | None,
        manifest: dict[str, Any],
        *,
        pending: bool = False,
    ) -> TrashEntry:
        """Move ``source`` (if it exists) into a new trash folder with a manifest.

        ``pending`` keeps the folder hidden until ``settle``: a delete moves the mail
        first and commits after, and a folder still pending at start-up names a delete
        that died in between (its rows tell whether it was committed).
        """
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        name = f"{stamp}-{kind}-{target}-{secrets.token_hex(4)}"
        entry_dir = self.trash_root / (PENDING + name if pending else name)
        has_data = source is not None and source.exists()
        full_manifest = {
            "kind": kind,
            "target": target,
            "deleted_at": datetime.now(UTC).isoformat(),
            "original_path": str(source) if source is not None else None,
            "has_data": has_data,
            **manifest,
        }
        self._make_trash_root()
        try:
            entry_dir.mkdir(mode=0o700)
            # The manifest goes first: a folder with mail in it always says what it holds.
            text = json.dumps(full_manifest, indent=2, sort_keys=True)
            write_atomic(entry_dir / MANIFEST, text.encode("utf-8"), 0o600)
            if source is not None and has_data:
                inside(self.mail_root, source)
                move(source, entry_dir / DATA)
        except (OSError, HostStateError) as exc:
            if not (entry_dir / DATA).exists():
                shutil.rmtree(entry_dir, ignore_errors=True)
            why = exc.strerror if isinstance(exc, OSError) else exc.message.rstrip(".")
            raise HostStateError(f"Could not move {target} to the trash: {why}.") from exc
        return TrashEntry(entry_dir, full_manifest)

    def settle(self, entry: TrashEntry) -> TrashEntry:
        """Make a pending trash folder a visible one, once its delete is committed."""
        if not entry.path.name.startswith(PENDING):
            return entry
        final = self.trash_root / entry.path.name[len(PENDING) :]
        try:
            os.rename(entry.path, final)
        except OSError as exc:
            raise HostStateError(
                f"Could not finish moving {entry.path.name} to the trash: {exc.strerror}."
            ) from exc
        return TrashEntry(final, entry.manifest)

    def drop_pending(self, entry: TrashEntry) -> None:
        """Remove a pending trash folder that holds no mail (its delete died before moving it)."""
        if not entry.path.name.startswith(PENDING) or entry.data_path.exists():
            raise HostStateError(f"Refusing to drop {entry.path.name}: it may hold mail.")
        try:
            shutil.rmtree(entry.path)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise HostStateError(f"Could not remove {entry.path.name}: {exc.strerror}.") from exc

    def pending_entries(self) -> list[TrashEntry]:
        """The trash folders of deletes not settled: each one's delete died half-way."""
        return self._entries(lambda name: name.startswith(PENDING))

    def restore_from_trash(self, entry: TrashEntry, destination: Path) -> None:
        """Move a trashed maildir back to ``destination`` and drop the trash folder."""
        if destination.exists():
            raise HostStateError(f"Cannot restore into {destination}: it exists already.")
        try:
            if entry.data_path.exists():
                self._make_parent(destination)
                move(entry.data_path, destination)
            shutil.rmtree(entry.path)
        except OSError as exc:
            raise HostStateError(f"Could not restore from the trash: {exc.strerror}.") from exc

    def trash_entries(self) -> list[TrashEntry]:
        """Every folder in the trash with its manifest, oldest name first.

        A folder whose manifest is missing or unreadable is listed with an empty manifest,
        so it can still be seen and purged; symlinks and plain files are ignored.
        """
        return self._entries(lambda name: not name.startswith("."))

    def _entries(self, wanted: Callable[[str], bool]) -> list[TrashEntry]:
        """The trash's folders whose names ``wanted`` accepts, in name order, with manifests."""
        try:
            names = sorted(os.listdir(self.trash_root))
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise HostStateError(f"Cannot list the trash: {exc.strerror}.") from exc
        entries = []
        for name in filter(wanted, names):
            path = self.trash_root / name
            try:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    continue
            except FileNotFoundError:
                continue  # purged meanwhile
            entries.append(TrashEntry(path, _read_manifest(path)))
        return entries

    def trash_entry(self, entry_id: object) -> TrashEntry:
        """The trash folder named ``entry_id``; InvalidInputError for a name that is not one.

        The id is a bare folder name: no ``/``, no ``..``, no hidden names, so it can
        never point outside the trash; NotFoundError if no such folder exists.
        """
        if (
            not isinstance(entry_id, str)
            or entry_id in ("", ".", "..")
            or entry_id.startswith(".")
            or "/" in entry_id
            or "\\" in entry_id
            or "\x00" in entry_id
            or len(entry_id) > 255
        ):
            raise InvalidInputError(f"{str(entry_id)[:100]!r} is not a trash id.")
        path = self.trash_root / entry_id
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            raise NotFoundError(f"There is nothing in the trash with the id {entry_id}.") from None
        except OSError as exc:
            raise HostStateError(f"Cannot read the trash entry: {exc.strerror}.") from exc
        if not stat.S_ISDIR(mode):
            raise NotFoundError(f"There is nothing in the trash with the id {entry_id}.")
        inside(self.trash_root, path)
        return TrashEntry(path, _read_manifest(path))

    def take_from_trash(self, entry: TrashEntry, destination: Path) -> bool:
        """Move a trashed maildir to ``destination``, keeping the trash folder and manifest.

        Returns whether there was data to move. ``put_back_in_trash`` undoes it;
        ``purge_trash_entry`` drops the folder once the restore is committed.
        """
        inside(self.trash_root, entry.path)
        if not entry.data_path.exists():
            return False
        if destination.exists():
            raise HostStateError(f"Cannot restore into {destination}: it exists already.")
        try:
            self._make_parent(destination)
            inside(self.mail_root, destination)
            move(entry.data_path, destination)
        except OSError as exc:
            raise HostStateError(f"Could not restore from the trash: {exc.strerror}.") from exc
        return True

    def put_back_in_trash(self, entry: TrashEntry, source: Path) -> None:
        """Undo ``take_from_trash``: move ``source`` back into the trash folder."""
        try:
            move(source, entry.data_path)
        except OSError as exc:
            raise HostStateError(
                f"Could not move {source} back to the trash: {exc.strerror}."
            ) from exc

    def purge_trash_entry(self, entry: TrashEntry) -> None:
        """Delete one trash folder for good: the only place mail is really deleted.

        The folder must be a real directory directly inside the trash; rmtree never
        follows symlinks inside it (it works on directory descriptors).
        """
        path = entry.path
        if path.parent != self.trash_root or path.name in ("", ".", ".."):
            raise HostStateError(f"Refusing to purge {path}: it is not a trash folder.")
        try:
            if not stat.S_ISDIR(os.lstat(path).st_mode):
                raise HostStateError(f"Refusing to purge {path}: it is not a directory.")
            inside(self.trash_root, path)
            if not shutil.rmtree.avoids_symlink_attacks:
                raise HostStateError("This platform cannot delete folders safely; not purging.")
            shutil.rmtree(path)
        except FileNotFoundError:
            return  # purged by someone else meanwhile
        except OSError as exc:
            raise HostStateError(f"Could not purge {path.name}: {exc.strerror}.") from exc


def _read_manifest(entry_dir: Path) -> dict[str, Any]:
    try:
        fd = os.open(entry_dir / MANIFEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with os.fdopen(fd, "rb") as handle:
            data = loads_limited(handle.read(16 * 1024 * 1024).decode("utf-8"), "manifest")
    except (OSError, ValueError, InvalidInputError):
        return {}
    return data if isinstance(data, dict) else {}


def mail_folders(mail_root: Path) -> list[tuple[Path, list[Path]]]:
    """Every domain folder of the mail root with its mailbox folders, sorted.

    Only real folders count: hidden names, links and plain files are left out.
    """

    def folders(parent: Path) -> list[Path]:
        try:
            names = sorted(os.listdir(parent))
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as exc:
            raise HostStateError(f"Cannot list {parent}: {exc.strerror}.") from exc
        found = []
        for name in names:
            path = parent / name
            with contextlib.suppress(FileNotFoundError):
                if not name.startswith(".") and stat.S_ISDIR(os.lstat(path).st_mode):
                    found.append(path)
        return found

    return [(domain, folders(domain)) for domain in folders(mail_root)]


def holds_files(path: Path) -> bool:
    """Whether anything but folders lies under ``path``: mail, an index, a link."""
    for _dirpath, dirnames, filenames in os.walk(path):
        if filenames:
            return True
        for name in dirnames:
            if os.path.islink(os.path.join(_dirpath, name)):
                return True
    return False


def remove_empty_tree(path: Path) -> bool:
    """Remove ``path`` if it holds only empty folders; False (and nothing removed past the
    first file met) otherwise. Never removes a file."""
    if holds_files(path):
        return False
    try:
        for dirpath, _dirnames, _filenames in os.walk(path, topdown=False):
            os.rmdir(dirpath)
    except FileNotFoundError:
        pass
    except OSError:
        return False  # something appeared meanwhile: keep it
    return True

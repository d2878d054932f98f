"""Start-up clean-up: what interrupted imports, exports, writes, creates and deletes left.

A process killed with -9 runs no ``finally``. What it was doing leaves traces that this
service finds and settles, one log line each, when ``mailctl serve`` or ``mailctl agent``
starts (and before a command that would trip on them):

* an import's upload and staging folder under ``data/imports`` and an export's or an
  atomic write's temporary ``.<name>.<random>.tmp``: removed, unless a live process
  holds its lock (several processes may share one data folder);
* a delete's trash folder still marked pending: undone (the mail goes back) if its rows
  are still there, since the delete was never committed, else finished;
* a trash folder a restore emptied: removed if the restore was committed, else the mail
  goes back into it;
* a maildir without its mailbox row (a create or an import killed before its commit):
  removed if it is an empty skeleton, moved to the trash if it holds anything.

The database is the truth: a maildir with a row is never touched, and no file that could
be mail is ever deleted here, only moved to the trash.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailctl.errors import HostStateError, MailctlError
from mailctl.host import maildir
from mailctl.host.fs import remove_abandoned, tree_size
from mailctl.host.maildir import TrashEntry
from mailctl.services.archive_import import (
    IMPORTS_DIR,
    STAGING_PREFIX,
    UPLOAD_PREFIX,
    UPLOAD_SUFFIX,
)
from mailctl.services.context import Context
from mailctl.services.trash import ORPHAN_KIND

log = logging.getLogger("mailctl.leftovers")

# The temporary sibling of an atomic write: ".<name>.<8 characters of mkstemp>.tmp".
_TEMP_NAME = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
# What a name in a scratch folder is (for the log), or None if it is none of ours.
KindOf = Callable[[str], str | None]
# How long the clean-up waits for live creates and deletes of other processes to finish.
CHANGES_WAIT_SECONDS = 10.0


@dataclass(frozen=True)
class Leftover:
    """One thing found: what it is, where, and what was done with it."""

    action: str  # removed, kept, moved to the trash, undone, finished
    what: str
    path: Path
    size: int = 0
    detail: str = ""

    def line(self) -> str:
        size = f" ({self.size} bytes)" if self.size else ""
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.action} {self.what} {self.path}{size}{detail}"


@dataclass
class Cleanup:
    """Everything one clean-up found, in the order it was handled."""

    items: list[Leftover] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, item: Leftover) -> None:
        log.warning("%s", item.line())
        self.items.append(item)

    @property
    def removed_bytes(self) -> int:
        return sum(item.size for item in self.items if item.action == "removed")


def clean_up(ctx: Context) -> Cleanup:
    """Settle what interrupted operations left behind; one warning in the log per item.

    Never raises for a leftover it cannot settle: it is logged as kept, and the next
    start tries again.
    """
    started = time.monotonic()
    report = Cleanup()
    settings = ctx.settings
    _scratch(report, settings.data_dir / IMPORTS_DIR, _import_scratch)
    _scratch(report, settings.archive_path, _temp_files("the temporary file of an export"))
    written = _temp_files("the temporary file of a write")
    _scratch(report, settings.data_dir, written)
    for rendered in (settings.opendkim_path, settings.tls_path):
        for folder in _folders(rendered):
            _scratch(report, folder, written)
    try:
        with ctx.maildirs.changing(exclusive=True, timeout=CHANGES_WAIT_SECONDS):
            for entry in ctx.maildirs.pending_entries():
                _settle_delete(ctx, report, entry)
            for entry in ctx.maildirs.trash_entries():
                _settle_restore(ctx, report, entry)
            _orphan_maildirs(ctx, report)
    except MailctlError as exc:
        report.add(Leftover("kept", "the maildirs of", ctx.maildirs.mail_root, 0, exc.message))
    report.seconds = time.monotonic() - started
    if report.items:
        log.warning(
            "clean-up of interrupted operations: %d found, %d bytes removed, in %.2f s",
            len(report.items),
            report.removed_bytes,
            report.seconds,
        )
    return report


def clean_up_safely(ctx: Context) -> Cleanup:
    """``clean_up`` for a process starting: whatever goes wrong is logged, never raised.

    A leftover is never worth keeping the API or the agent from starting; the next start
    tries again.
    """
    try:
        return clean_up(ctx)
    except Exception:
        log.exception("the clean-up of interrupted operations failed")
        return Cleanup()


def _import_scratch(name: str) -> str | None:
    if name.startswith(UPLOAD_PREFIX) and name.endswith(UPLOAD_SUFFIX):
        return "the upload of an import"
    if name.startswith(STAGING_PREFIX):
        return "the staging folder of an import"
    return None


def _temp_files(what: str) -> KindOf:
    def kind(name: str) -> str | None:
        return what if _TEMP_NAME.match(name) else None

    return kind


def _folders(root: Path) -> Iterator[Path]:
    """``root`` and the real folders under it (links are not followed)."""
    if not root.is_dir():
        return
    yield root
    for path in sorted(root.rglob("*")):
        if path.is_dir() and not path.is_symlink():
            yield path


def _scratch(report: Cleanup, directory: Path, kind_of: KindOf) -> None:
    try:
        names = sorted(p.name for p in directory.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as exc:
        log.warning("cannot look for leftovers in %s: %s", directory, exc.strerror)
        return
    for name in names:
        what = kind_of(name)
        if what is None:
            continue
        path = directory / name
        try:
            removal = remove_abandoned(path)
        except HostStateError as exc:
            report.add(Leftover("kept", what, path, tree_size(path), exc.message))
            continue
        if removal.held:
            report.add(Leftover("kept", what, path, 0, "a running process holds it"))
        elif removal.removed:
            report.add(Leftover("removed", what, path, removal.size, "its process is gone"))


def _settle_delete(ctx: Context, report: Cleanup, entry: TrashEntry) -> None:
    """A delete died between moving its mail to the trash and committing (or just after)."""
    manifest = entry.manifest
    kind, target = manifest.get("kind"), manifest.get("target")
    what = f"the trash folder of an interrupted delete of {kind} {target}"
    if kind not in ("mailbox", "domain") or not isinstance(target, str):
        what = "the trash folder of an interrupted delete"
        if not entry.data_path.exists():
            # Killed before its manifest was written, so before any mail moved.
            size = tree_size(entry.path)
            try:
                ctx.maildirs.drop_pending(entry)
            except MailctlError as exc:
                report.add(Leftover("kept", what, entry.path, size, exc.message))
                return
            report.add(Leftover("removed", what, entry.path, size, "it held no mail"))
            return
        _finish(ctx, report, entry, what, "its manifest is unreadable")
        return
    try:
        with ctx.uow() as uow:
            if kind == "domain":
                still_there = uow.domains.by_name(target) is not None
                domain = target
                destination = ctx.maildirs.domain_path(target)
            else:
                still_there = uow.users.by_email(target) is not None
                local_part, domain = target.rsplit("@", 1)
                destination = ctx.maildirs.mailbox_path(domain, local_part)
    except (MailctlError, ValueError) as exc:
        detail = exc.message if isinstance(exc, MailctlError) else str(exc)
        report.add(Leftover("kept", what, entry.path, 0, detail))
        return
    if not still_there:
        _finish(ctx, report, entry, what, "the delete was committed")
        return
    if destination.exists() and entry.data_path.exists():
        _finish(ctx, report, entry, what, f"{destination} exists again, so the mail stays here")
        return
    size = tree_size(entry.data_path)
    try:
        ctx.maildirs.restore_from_trash(entry, destination)
    except MailctlError as exc:
        report.add(Leftover("kept", what, entry.path, size, exc.message))
        return
    report.add(
        Leftover(
            "undone",
            what,
            entry.path,
            size,
            f"it was never committed; the mail of {domain if kind == 'domain' else target} "
            f"is back in {destination}",
        )
    )


def _settle_restore(ctx: Context, report: Cleanup, entry: TrashEntry) -> None:
    """A restore died between taking the mail out of the trash and dropping the folder.

    Only a restore takes the mail out of a trash folder, so a folder that says it holds
    mail and holds none names one. Its rows tell whether it was committed.
    """
    manifest = entry.manifest
    kind, target = manifest.get("kind"), manifest.get("target")
    if kind not in ("mailbox", "domain") or not isinstance(target, str):
        return
    if manifest.get("has_data") is not True or entry.data_path.exists():
        return
    what = f"the trash folder of an interrupted restore of {kind} {target}"
    try:
        with ctx.uow() as uow:
            if kind == "domain":
                restored = uow.domains.by_name(target) is not None
                destination = ctx.maildirs.domain_path(target)
            else:
                restored = uow.users.by_email(target) is not None
                local_part, domain = target.rsplit("@", 1)
                destination = ctx.maildirs.mailbox_path(domain, local_part)
        if restored:
            if sorted(p.name for p in entry.path.iterdir()) != [maildir.MANIFEST]:
                report.add(Leftover("kept", what, entry.path, 0, "it holds more than its manifest"))
                return
            ctx.maildirs.purge_trash_entry(entry)
            report.add(
                Leftover("removed", what, entry.path, 0, "the restore was committed; it was empty")
            )
        elif destination.is_dir() and not destination.is_symlink():
            size = tree_size(destination)
            ctx.maildirs.put_back_in_trash(entry, destination)
            report.add(
                Leftover(
                    "undone",
                    what,
                    entry.path,
                    size,
                    f"it was never committed; the mail is back in the trash from {destination}",
                )
            )
        else:
            report.add(Leftover("kept", what, entry.path, 0, "its mail is not where it went"))
    except (MailctlError, OSError, ValueError) as exc:
        detail = exc.message if isinstance(exc, MailctlError) else str(exc)
        report.add(Leftover("kept", what, entry.path, 0, detail))


def _finish(ctx: Context, report: Cleanup, entry: TrashEntry, what: str, why: str) -> None:
    try:
        settled = ctx.maildirs.settle(entry)
    except MailctlError as exc:
        report.add(Leftover("kept", what, entry.path, 0, exc.message))
        return
    report.add(Leftover("finished", what, settled.path, 0, f"{why}; it is in the trash"))


def _orphan_maildirs(ctx: Context, report: Cleanup) -> None:
    """Maildirs without their mailbox row: a create or import killed before its commit."""
    for domain_dir, mailbox_dirs in maildir.mail_folders(ctx.maildirs.mail_root):
        domain = domain_dir.name
        with ctx.uow() as uow:
            row = uow.domains.by_name(domain)
            emails = {user.email for user in uow.users.list_for_domain(row.id)} if row else set()
        for path in mailbox_dirs:
            email = f"{path.name}@{domain}"
            if email in emails:
                continue
            what = f"the maildir of {email}, which has no mailbox,"
            if maildir.remove_empty_tree(path):
                report.add(Leftover("removed", what, path, 0, "it was an empty skeleton"))
                continue
            size = tree_size(path)
            try:
                entry = ctx.maildirs.move_to_trash(
                    ORPHAN_KIND,
                    email,
                    path,
                    {"domain": domain, "mailboxes": [], "aliases": [], "found_without_row": True},
                )
            except MailctlError as exc:
                report.add(Leftover("kept", what, path, size, exc.message))
                continue
            report.add(
                Leftover("moved to the trash", what, path, size, f"trash id {entry.path.name}")
            )
        if row is None and maildir.remove_empty_tree(domain_dir):
            report.add(
                Leftover(
                    "removed", f"the empty folder of {domain}, which has no domain,", domain_dir
                )
            )

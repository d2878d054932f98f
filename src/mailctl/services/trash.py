"""The trash: list deleted mailboxes and domains, restore one with its rows, purge old ones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailctl.domain import dkim
from mailctl.domain.names import normalize_domain, parse_address
from mailctl.domain.sizes import MAX_SIZE
from mailctl.errors import ConflictError, InvalidInputError, MailctlError, NotFoundError
from mailctl.host.maildir import TrashEntry
from mailctl.services import quotas
from mailctl.services.context import Actor, Context
from mailctl.services.scope import Scope
from mailctl.storage.tables import LIMIT_COLUMNS

log = logging.getLogger("mailctl.trash")

# The kind of a trash entry that holds a maildir found on disk without its mailbox row.
ORPHAN_KIND = "maildir"


@dataclass(frozen=True)
class TrashItem:
    """One deleted mailbox or domain as the trash lists it."""

    id: str
    kind: str
    target: str
    deleted_at: datetime | None
    has_data: bool
    mailboxes: int


@dataclass(frozen=True)
class Restored:
    """What a restore brought back."""

    kind: str
    target: str
    mailboxes: int
    aliases: int
    dkim_keys: int


@dataclass(frozen=True)
class _Mailbox:
    email: str
    local_part: str
    password: str
    quota_bytes: int | None = None
    quota_messages: int | None = None


@dataclass(frozen=True)
class _Key:
    selector: str
    key_type: str
    private_key: str
    active: bool


def _deleted_at(manifest: dict[str, Any]) -> datetime | None:
    raw = manifest.get("deleted_at")
    if not isinstance(raw, str):
        return None
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _item(entry: TrashEntry) -> TrashItem:
    manifest = entry.manifest
    mailboxes = manifest.get("mailboxes")
    return TrashItem(
        id=entry.path.name,
        kind=str(manifest.get("kind", "unknown")),
        target=str(manifest.get("target", "")),
        deleted_at=_deleted_at(manifest),
        has_data=entry.data_path.is_dir(),
        mailboxes=len(mailboxes) if isinstance(mailboxes, list) else 0,
    )


def _visible(scope: Scope | None, item: TrashItem) -> bool:
    """Whether ``scope`` sees a trash entry: a narrowed one, only its domains' mailboxes."""
    if scope is None or scope.every_domain:
        return True
    return item.kind == "mailbox" and scope.sees_name(item.target.rpartition("@")[2])


def list_trash(ctx: Context, scope: Scope | None = None) -> list[TrashItem]:
    """Everything in the trash, oldest first; of a narrowed ``scope``, the mailboxes of
    the domains it may see (a deleted domain is no longer granted to anyone)."""
    items = [_item(entry) for entry in ctx.maildirs.trash_entries()]
    items = [item for item in items if _visible(scope, item)]
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(items, key=lambda item: (item.deleted_at or oldest, item.id))


def _text(raw: object, what: str) -> str:
    if not isinstance(raw, str) or not raw:
        raise InvalidInputError(f"The trash manifest's {what} is missing or not text.")
    return raw


def _mailboxes(manifest: dict[str, Any], domain: str) -> list[_Mailbox]:
    raw = manifest.get("mailboxes", [])
    if not isinstance(raw, list):
        raise InvalidInputError("The trash manifest's mailboxes are not a list.")
    found = []
    for record in raw:
        if not isinstance(record, dict):
            raise InvalidInputError("A mailbox in the trash manifest is not an object.")
        address = parse_address(_text(record.get("email"), "mailbox email"))
        if address.domain != domain:
            raise InvalidInputError(
                f"The trashed mailbox {address.email} is not in the domain {domain}."
            )
        # The hash is restored exactly as it was stored, so the old password keeps working.
        found.append(
            _Mailbox(
                address.email,
                address.local_part,
                _text(record.get("password"), "hash"),
                _number(record.get("quota_bytes"), "mailbox quota"),
                _number(record.get("quota_messages"), "mailbox message count"),
            )
        )
    return found


def _number(raw: object, what: str) -> int | None:
    """A quota or limit of a manifest: absent, or a whole number of at least 0."""
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= MAX_SIZE:
        raise InvalidInputError(f"The trash manifest's {what} is not a whole number.")
    return raw or None


def _limits(manifest: dict[str, Any]) -> dict[str, int | None]:
    raw = manifest.get("limits", {})
    if not isinstance(raw, dict):
        raise InvalidInputError("The trash manifest's limits are not an object.")
    return {column: _number(raw.get(column), "domain limit") for column in LIMIT_COLUMNS}


def _aliases(manifest: dict[str, Any]) -> list[tuple[str, str]]:
    raw = manifest.get("aliases", [])
    if not isinstance(raw, list):
        raise InvalidInputError("The trash manifest's aliases are not a list.")
    found = []
    for record in raw:
        if not isinstance(record, dict):
            raise InvalidInputError("An alias in the trash manifest is not an object.")
        found.append(
            (_text(record.get("source"), "alias"), _text(record.get("destination"), "alias"))
        )
    return found


def _keys(manifest: dict[str, Any]) -> list[_Key]:
    raw = manifest.get("dkim_keys", [])
    if not isinstance(raw, list):
        raise InvalidInputError("The trash manifest's DKIM keys are not a list.")
    found = []
    for record in raw:
        if not isinstance(record, dict):
            raise InvalidInputError("A DKIM key in the trash manifest is not an object.")
        pem = _text(record.get("private_key"), "DKIM key")
        found.append(
            _Key(
                selector=dkim.validate_selector(record.get("selector")),
                key_type=dkim.key_type_of(pem),
                private_key=pem,
                active=record.get("active") is True,
            )
        )
    return found


def restore(ctx: Context, actor: Actor, trash_id: object) -> Restored:
    """Bring a deleted mailbox or domain back: its rows in one transaction, its mail moved back.

    A mailbox needs its domain to exist (NotFoundError otherwise); a mailbox or domain
    that exists again is never overwritten (ConflictError). If the commit fails, the
    mail goes back to the trash and nothing else changed.
    """
    with ctx.maildirs.changing():
        entry = ctx.maildirs.trash_entry(trash_id)
        if not _visible(actor.scope, _item(entry)):
            raise NotFoundError(f"There is nothing in the trash with the id {entry.path.name}.")
        return _restore(ctx, actor, entry)


def _restore(ctx: Context, actor: Actor, entry: TrashEntry) -> Restored:
    manifest = entry.manifest
    kind = manifest.get("kind")
    if kind == ORPHAN_KIND:
        raise InvalidInputError(
            f"The trash entry {entry.path.name} is a maildir found without its mailbox; "
            "there are no rows to restore. Its mail is in the entry's data folder."
        )
    if kind not in ("mailbox", "domain"):
        raise InvalidInputError(
            f"The trash entry {entry.path.name} has no readable manifest; it cannot be restored."
        )
    domain_name = normalize_domain(_text(manifest.get("domain"), "domain"))
    mailboxes = _mailboxes(manifest, domain_name)
    if kind == "mailbox":
        if len(mailboxes) != 1:
            raise InvalidInputError("The trashed mailbox's manifest must hold one mailbox.")
        return _restore_mailbox(ctx, actor, entry, domain_name, mailboxes[0])
    return _restore_domain(ctx, actor, entry, domain_name, mailboxes)


def _restore_mailbox(
    ctx: Context, actor: Actor, entry: TrashEntry, domain_name: str, mailbox: _Mailbox
) -> Restored:
    destination = ctx.maildirs.mailbox_path(domain_name, mailbox.local_part)
    aliases = _aliases(entry.manifest)
    with ctx.uow() as uow:
        found = uow.domains.by_name(domain_name)
        domain = None if found is None else uow.domains.locked(found.id)
        if domain is None:
            raise NotFoundError(
                f"The domain {domain_name} does not exist; restore or create it before "
                f"restoring {mailbox.email}."
            )
        if uow.users.by_email(mailbox.email) is not None:
            raise ConflictError(f"The mailbox {mailbox.email} exists again; not overwriting it.")
        if destination.exists() and entry.data_path.exists():
            raise ConflictError(
                f"The maildir of {mailbox.email} exists on disk again; not overwriting it."
            )
        # The domain's limits hold for a mailbox that comes back as for a new one.
        quotas.check_new_mailboxes(uow, domain, [mailbox.quota_bytes])
        uow.users.add(
            domain.id, mailbox.email, mailbox.password, mailbox.quota_bytes, mailbox.quota_messages
        )
        restored_aliases = 0
        for source, target in aliases:
            # The aliases that were removed with the mailbox, where their domain still is
            # and nobody has made them again meanwhile.
            alias_domain = uow.domains.by_name(source.rsplit("@", 1)[-1])
            again = any(a.destination == target for a in uow.aliases.by_source(source))
            if alias_domain is not None and not again:
                uow.aliases.add(alias_domain.id, source, target)
                restored_aliases += 1
        uow.audit.record(actor, "restore_user", mailbox.email, entry.path.name, domain=domain_name)
        uow.flush()
        _commit_with_move(ctx, uow.commit, entry, destination)
    ctx.maildirs.create_mailbox(domain_name, mailbox.local_part)
    ctx.changed("users")
    return Restored("mailbox", mailbox.email, 1, restored_aliases, 0)


def _restore_domain(
    ctx: Context, actor: Actor, entry: TrashEntry, domain_name: str, mailboxes: list[_Mailbox]
) -> Restored:
    aliases = _aliases(entry.manifest)
    keys = _keys(entry.manifest)
    destination = ctx.maildirs.domain_path(domain_name)
    with ctx.uow() as uow:
        if uow.domains.by_name(domain_name) is not None:
            raise ConflictError(f"The domain {domain_name} exists again; not overwriting it.")
        if destination.exists() and entry.data_path.exists():
            raise ConflictError(
                f"The mail directory of {domain_name} exists on disk again; not overwriting it."
            )
        domain = uow.domains.add(domain_name)
        for column, value in _limits(entry.manifest).items():
            setattr(domain, column, value)
        for mailbox in mailboxes:
            if uow.users.by_email(mailbox.email) is not None:
                raise ConflictError(f"The mailbox {mailbox.email} exists already.")
            uow.users.add(
                domain.id,
                mailbox.email,
                mailbox.password,
                mailbox.quota_bytes,
                mailbox.quota_messages,
            )
        for source, target in aliases:
            uow.aliases.add(domain.id, source, target)
        for key in keys:
            uow.dkim_keys.add(domain.id, key.selector, key.key_type, key.private_key, key.active)
        uow.audit.record(
            actor,
            "restore_domain",
            domain_name,
            f"{entry.path.name}: {len(mailboxes)} mailboxes, {len(aliases)} aliases",
            domain=domain_name,
        )
        uow.flush()
        _commit_with_move(ctx, uow.commit, entry, destination)
    for mailbox in mailboxes:
        ctx.maildirs.create_mailbox(domain_name, mailbox.local_part)
    # One reconcile renders both; listeners hear whether keys came with the domain.
    ctx.changed("dkim" if keys else "domains")
    return Restored("domain", domain_name, len(mailboxes), len(aliases), len(keys))


def _commit_with_move(
    ctx: Context, commit: Callable[[], None], entry: TrashEntry, destination: Path
) -> None:
    """Move the mail back, commit, and drop the trash folder; undo the move if commit fails."""
    moved = ctx.maildirs.take_from_trash(entry, destination)
    try:
        commit()
    except MailctlError:
        if moved:
            ctx.maildirs.put_back_in_trash(entry, destination)
        raise
    try:
        ctx.maildirs.purge_trash_entry(entry)
    except MailctlError as exc:
        # The restore is committed and the mail is back; only the emptied folder remains.
        log.warning("restored %s but could not drop its trash folder: %s", entry.path, exc)


def purge(
    ctx: Context,
    older_than_days: int | None = None,
    trash_id: object = None,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> list[TrashItem]:
    """Delete trash entries deleted more than ``older_than_days`` ago; return what went.

    Without ``older_than_days`` the retention setting applies, or no age limit when one
    ``trash_id`` is named. An entry whose deletion time cannot be read counts by its
    folder's modification time. ``dry_run`` only says what would go.
    """
    if older_than_days is None:
        older_than_days = 0 if trash_id is not None else ctx.settings.trash_retention_days
    if older_than_days < 0:
        raise InvalidInputError("The age of trash entries to purge cannot be negative.")
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    if trash_id is not None:
        entries = [ctx.maildirs.trash_entry(trash_id)]
    else:
        entries = ctx.maildirs.trash_entries()
    purged = []
    for entry in entries:
        item = _item(entry)
        deleted_at = item.deleted_at
        if deleted_at is None:
            deleted_at = datetime.fromtimestamp(entry.path.lstat().st_mtime, UTC)
        if deleted_at <= cutoff:
            if not dry_run:
                ctx.maildirs.purge_trash_entry(entry)
            purged.append(item)
    return purged

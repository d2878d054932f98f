"""Use cases for mailboxes: list, create (one or a batch), change password, delete to the trash."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from mailctl.domain import passwords
from mailctl.domain.names import Address, parse_address
from mailctl.domain.numbers import ascii_digits
from mailctl.domain.sizes import parse_size
from mailctl.errors import (
    ConflictError,
    InvalidEntryError,
    InvalidInputError,
    MailctlError,
    NotFoundError,
    TooLargeError,
)
from mailctl.host.maildir import TrashEntry
from mailctl.services import quotas, scope
from mailctl.services.context import Actor, Context
from mailctl.services.paging import Page, Paged, fetch
from mailctl.services.views import TrashView, UserView
from mailctl.storage.reads import Reads
from mailctl.storage.tables import User

log = logging.getLogger("mailctl.trash")

R = TypeVar("R", bound=Sized)


def hash_new_password(ctx: Context, password: object) -> str:
    """Check a new mailbox password against the policy and hash it with the set scheme."""
    plain = passwords.check_new_password(password, ctx.settings.min_password_length)
    return ctx.passwords.hash(plain, ctx.settings.password_scheme)


def parse_id(value: object, what: str) -> int:
    """Read a numeric id from a path or form field; InvalidInputError if it is not one."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and ascii_digits(value.strip()) and len(value.strip()) <= 18:
        number = int(value.strip())
    else:
        raise InvalidInputError(f"The {what} must be a positive whole number.")
    if number <= 0:
        raise InvalidInputError(f"The {what} must be a positive whole number.")
    return number


def list_users(ctx: Context, domain_id: int | str) -> list[UserView]:
    """The mailboxes of one domain; NotFoundError for an unknown domain id."""
    return page_users(ctx, domain_id, Page()).items


def page_users(ctx: Context, domain_id: int | str, page: Page) -> Paged[UserView]:
    """One page of the mailboxes of one domain, by id; NotFoundError for an unknown id."""
    ident = parse_id(domain_id, "domain id")
    with ctx.reads() as reads:
        return _users_page(reads, ident, page)


def _users_page(reads: Reads, ident: int, page: Page) -> Paged[UserView]:
    if not reads.domain_exists(ident):
        raise NotFoundError(f"There is no domain with id {ident}.")
    return fetch(
        page, lambda window: reads.user_rows(ident, window), UserView._make, lambda u: u.id
    )


def create_user(
    ctx: Context,
    actor: Actor,
    domain_id: int | str,
    email: str,
    password: str | None,
    password_hash: str | None = None,
    quota: object = None,
) -> UserView:
    """Create a mailbox in the domain with that id, and its maildir.

    ``password_hash`` takes an existing Dovecot ``{SCHEME}...`` hash instead of a password,
    so mailboxes can move from another server without their users choosing new passwords.
    ``quota`` is its storage quota (bytes, or 10M, 2G...; none: unlimited). The domain's
    limits are checked (ConflictError).
    """
    ident = parse_id(domain_id, "domain id")
    size = None if quota in (None, "") else parse_size(quota) or None
    if not email.strip():
        raise InvalidInputError("An email address is required.")
    if password is not None and password_hash is not None:
        raise InvalidInputError("Give either a password or a password hash, not both.")
    if password is None and password_hash is None:
        raise InvalidInputError("A password or a password hash is required.")
    with ctx.uow() as uow:
        domain = uow.domains.get(ident)
        if domain is None:
            raise NotFoundError(f"There is no domain with id {ident}.")
        domain_name = domain.name
    address = parse_address(email, default_domain=domain_name)
    if address.domain != domain_name:
        raise InvalidInputError(
            f"The address {address.email} does not belong to the domain {domain_name}."
        )
    if password_hash is not None:
        hashed = passwords.validate_prehashed(password_hash)
    else:
        hashed = hash_new_password(ctx, password)
    with ctx.maildirs.changing(), ctx.uow() as uow:
        domain = uow.domains.locked(ident)
        if domain is None:
            raise NotFoundError(f"There is no domain with id {ident}.")
        if uow.users.by_email(address.email) is not None:
            raise ConflictError(f"The mailbox {address.email} exists already.")
        quotas.check_new_mailboxes(uow, domain, [size])
        user = uow.users.add(ident, address.email, hashed, quota_bytes=size)
        uow.audit.record(actor, "create_user", address.email, domain=domain_name)
        existed = ctx.maildirs.mailbox_path(domain_name, address.local_part).exists()
        ctx.maildirs.create_mailbox(domain_name, address.local_part)
        try:
            uow.commit()
        except MailctlError:
            if not existed:
                ctx.maildirs.remove_empty_mailbox(domain_name, address.local_part)
            raise
        view = UserView(user.id, ident, user.email, size)
    ctx.changed("users")
    return view


@dataclass(frozen=True)
class NewMailbox:
    """One entry of a batch create: an address, and a password or an existing hash, and
    its quota (bytes or 10M, 2G...) when it has one."""

    email: str
    password: str | None = None
    password_hash: str | None = None
    quota: object = None


# Addresses a conflict names at most; the count says how many more there are.
_SHOWN_CONFLICTS = 10


def shown_email(value: str) -> str:
    """An entry's address as an error shows it: printable, and cut if long."""
    text = value.strip().encode("ascii", "backslashreplace").decode("ascii")
    return text[:100] or "no address"


def _checked_entry(
    ctx: Context, index: int, entry: NewMailbox, domain_name: str
) -> tuple[Address, str | None, str | None]:
    """An entry's address, and its password to hash or its validated hash; or
    InvalidEntryError naming it."""
    shown = shown_email(entry.email)
    try:
        if not entry.email.strip():
            raise InvalidInputError("An email address is required.")
        if entry.password is not None and entry.password_hash is not None:
            raise InvalidInputError("Give either a password or a password hash, not both.")
        if entry.password is None and entry.password_hash is None:
            raise InvalidInputError("A password or a password hash is required.")
        address = parse_address(entry.email, default_domain=domain_name)
        shown = address.email
        if address.domain != domain_name:
            raise InvalidInputError(
                f"The address {address.email} does not belong to the domain {domain_name}."
            )
        if entry.password_hash is not None:
            return address, None, passwords.validate_prehashed(entry.password_hash)
        plain = passwords.check_new_password(entry.password, ctx.settings.min_password_length)
        if ctx.settings.password_scheme in ("BLF-CRYPT", "SHA512-CRYPT"):
            # The scheme's own limits (72 or 511 bytes), found now rather than after the
            # other entries were hashed.
            _check_scheme_length(plain, ctx.settings.password_scheme)
        return address, plain, None
    except InvalidEntryError:
        raise
    except InvalidInputError as exc:
        raise InvalidEntryError(index, shown, exc.message) from exc


def _check_scheme_length(plain: str, scheme: str) -> None:
    """InvalidInputError when ``scheme`` cannot take a password this long."""
    limit = passwords.BCRYPT_MAX_BYTES if scheme == "BLF-CRYPT" else passwords.SHA_CRYPT_MAX_BYTES
    size = len(plain.encode("utf-8"))
    if size > limit:
        raise InvalidInputError(
            f"{scheme} takes at most {limit} bytes of password and this one is {size} bytes "
            "long; choose a shorter password or another scheme."
        )


def create_users(
    ctx: Context, actor: Actor, domain_id: int | str, entries: Sequence[NewMailbox]
) -> list[UserView]:
    """Create many mailboxes of one domain, and their maildirs, all or none.

    Every entry is checked first (as create_user checks one); then the passwords are
    hashed in parallel through the password pool, and the rows go in with one insert in
    one transaction, with one audit entry per mailbox. InvalidEntryError names the first
    refused entry (its place from 1, and its address), ConflictError the addresses that
    exist already, TooLargeError a batch over ``max_batch_users``; nothing is created then.
    """
    ident = parse_id(domain_id, "domain id")
    limit = ctx.settings.max_batch_users
    if not entries:
        raise InvalidInputError("The batch is empty: give at least one mailbox.")
    if len(entries) > limit:
        raise TooLargeError(
            f"The batch has {len(entries)} mailboxes; at most {limit} are allowed at once. "
            "Split it into smaller batches."
        )
    with ctx.uow() as uow:
        domain = uow.domains.get(ident)
        if domain is None:
            raise NotFoundError(f"There is no domain with id {ident}.")
        domain_name = domain.name
    checked: list[tuple[Address, str | None, str | None]] = []
    sizes: list[int | None] = []
    first_place: dict[str, int] = {}
    for index, entry in enumerate(entries, start=1):
        address, plain, hashed = _checked_entry(ctx, index, entry, domain_name)
        try:
            sizes.append(None if entry.quota in (None, "") else parse_size(entry.quota) or None)
        except InvalidInputError as exc:
            raise InvalidEntryError(index, address.email, exc.message) from exc
        earlier = first_place.setdefault(address.email, index)
        if earlier != index:
            raise InvalidEntryError(
                index, address.email, f"The address is in the batch already, as entry {earlier}."
            )
        checked.append((address, plain, hashed))
    emails = [address.email for address, _, _ in checked]
    plains = [plain for _, plain, _ in checked if plain is not None]
    if plains:
        # Before the costly part, so a conflict answers at once; checked again below.
        with ctx.uow() as uow:
            _refuse_existing(uow.users.existing(emails))
    fresh = iter(ctx.passwords.hash_many(plains, ctx.settings.password_scheme))
    rows = [
        (address.email, hashed if hashed is not None else next(fresh))
        for address, _, hashed in checked
    ]
    local_parts = [address.local_part for address, _, _ in checked]
    with ctx.maildirs.changing(), ctx.uow() as uow:
        domain = uow.domains.locked(ident)
        if domain is None:
            raise NotFoundError(f"There is no domain with id {ident}.")
        # Checked under the transaction: a create may have come in meanwhile.
        _refuse_existing(uow.users.existing(emails))
        quotas.check_new_mailboxes(uow, domain, sizes)
        inserted = uow.users.add_many(ident, rows, sizes)
        uow.audit.record_many(
            actor, "create_user", emails, f"one of a batch of {len(rows)}", domain=domain_name
        )
        made = ctx.maildirs.create_mailboxes(domain_name, local_parts)  # removes its own on failure
        try:
            uow.commit()
        except MailctlError:
            for local_part in made:
                ctx.maildirs.remove_empty_mailbox(domain_name, local_part)
            raise
    ctx.changed("users")
    return [
        UserView(user_id, ident, email, size)
        for (user_id, email), size in zip(inserted, sizes, strict=True)
    ]


def _refuse_existing(existing: Sequence[str]) -> None:
    """ConflictError naming the addresses of a batch that are mailboxes already."""
    if not existing:
        return
    shown = ", ".join(existing[:_SHOWN_CONFLICTS])
    more = len(existing) - _SHOWN_CONFLICTS
    if len(existing) == 1:
        raise ConflictError(f"The mailbox {shown} exists already; no mailbox was created.")
    raise ConflictError(
        f"{len(existing)} mailboxes of the batch exist already: {shown}"
        + (f" and {more} more" if more > 0 else "")
        + "; no mailbox was created."
    )


def change_password(
    ctx: Context, actor: Actor, user_id: int | str, password: str, domain_id: int | str
) -> UserView:
    """Set a mailbox's password; it is committed before this returns."""
    uid = parse_id(user_id, "user id")
    did = parse_id(domain_id, "domain id")
    if not password:
        raise InvalidInputError("A new password is required.")
    hashed = hash_new_password(ctx, password)
    with ctx.uow() as uow:
        user = uow.users.get(uid)
        if user is None or user.domain_id != did:
            raise NotFoundError(f"There is no user with id {uid} in the domain with id {did}.")
        user.password = hashed
        uow.audit.record(actor, "change_password", user.email, domain=user.email.rpartition("@")[2])
        uow.commit()
        view = UserView(user.id, user.domain_id, user.email)
    ctx.changed("users")
    return view


def delete_user(ctx: Context, actor: Actor, email: str) -> TrashView:
    """Delete a mailbox; its maildir moves to the trash with a manifest."""
    if not email.strip():
        raise InvalidInputError("An email address is required.")
    address = parse_address(email)
    missing = f"The mailbox {address.email} does not exist."
    scope.within(actor, address.domain, missing)
    with ctx.maildirs.changing(), ctx.uow() as uow:
        user = uow.users.by_email(address.email, lock=True)
        if user is None:
            raise NotFoundError(missing)
        record = mailbox_record(user)
        # Its Sieve script must go with it, before anyone gets the address again.
        had_settings = uow.mailbox_settings.has_any(user.id)
        if not uow.users.delete(user):
            # A concurrent delete won; it made the one trash entry.
            raise NotFoundError(f"The mailbox {address.email} does not exist.")
        # Aliases that lead to this mailbox alone would accept mail only to bounce it; they
        # go with it (and come back with a restore). Lists naming others stay.
        found = uow.aliases.by_destination(address.email)
        pairs = [(a, {"source": a.source, "destination": a.destination}) for a in found]
        # Only what this transaction deleted goes in the manifest: an alias a racing delete
        # removed must not come back with a restore.
        deleted = [(a, record) for a, record in pairs if uow.aliases.delete(a)]
        orphans = [a for a, _ in deleted]
        alias_records = [record for _, record in deleted]
        uow.audit.record(
            actor,
            "delete_user",
            address.email,
            f"with aliases {', '.join(a.source for a in orphans)}" if orphans else None,
            domain=address.domain,
        )
        source = ctx.maildirs.mailbox_path(address.domain, address.local_part)
        entry = ctx.maildirs.move_to_trash(
            "mailbox",
            address.email,
            source,
            {"domain": address.domain, "mailboxes": [record], "aliases": alias_records},
            pending=True,
        )
        entry = commit_to_trash(ctx, uow.commit, entry, source)
    ctx.changed("users")
    if had_settings:
        ctx.changed("mailbox_settings")
    sources = tuple(str(a["source"]) for a in alias_records)
    return TrashView(str(entry.path), "mailbox", address.email, sources)


def mailbox_record(user: User) -> dict[str, object]:
    """A mailbox as a trash manifest keeps it: its address, its hash, its quota if any."""
    record: dict[str, object] = {"email": user.email, "password": user.password}
    for column in ("quota_bytes", "quota_messages"):
        if getattr(user, column):
            record[column] = getattr(user, column)
    return record


def commit_to_trash(
    ctx: Context, commit: Callable[[], None], entry: TrashEntry, source: Path
) -> TrashEntry:
    """Commit a delete whose mail moved to the pending trash ``entry``, then settle it.

    If the commit fails the mail goes back to ``source``; if only settling fails, the
    delete stands and the next start-up settles the folder.
    """
    try:
        commit()
    except MailctlError:
        ctx.maildirs.restore_from_trash(entry, source)
        raise
    try:
        return ctx.maildirs.settle(entry)
    except MailctlError as exc:
        log.warning("the delete is done, but %s", exc.message)
        return entry


def find_user(ctx: Context, email: object) -> UserView:
    """One mailbox by address; NotFoundError if there is none."""
    address = parse_address(email)
    with ctx.uow() as uow:
        user = uow.users.by_email(address.email)
        if user is None:
            raise NotFoundError(f"The mailbox {address.email} does not exist.")
        return UserView(user.id, user.domain_id, user.email)

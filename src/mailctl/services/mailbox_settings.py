"""A mailbox's forwarding and auto-reply: read and change them, as its owner or an admin.

The settings are rows; the Sieve script each mailbox with settings gets is rendered from
them by reconcile (``Context.changed("mailbox_settings")``), which also removes the
script when the settings go. An admin reaches only the mailboxes of the domains it sees:
any other answers as a mailbox that does not exist.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime

from mailctl.domain import sieve
from mailctl.domain.names import parse_address
from mailctl.errors import InvalidInputError, NotFoundError
from mailctl.services import scope
from mailctl.services.context import Actor, Context
from mailctl.services.mailboxes import parse_id
from mailctl.storage.tables import MailboxAutoreply, MailboxForwarding, User
from mailctl.storage.uow import UnitOfWork

CHANGED = "mailbox_settings"
_SEPARATORS = re.compile(r"[\s,;]+")
# How far a chain of forwardings and aliases is followed to find one back to the mailbox.
_MAX_HOPS = 50


@dataclass(frozen=True)
class Forwarding:
    """Where mail is forwarded; no destinations: off."""

    destinations: tuple[str, ...] = ()
    keep_copy: bool = False

    @property
    def enabled(self) -> bool:
        return bool(self.destinations)


@dataclass(frozen=True)
class Autoreply:
    """The auto-reply; kept while off, so it can be turned on again as it was."""

    enabled: bool = False
    subject: str = ""
    body: str = ""
    starts_on: date | None = None
    ends_on: date | None = None


@dataclass(frozen=True)
class MailboxSettingsView:
    """A mailbox and its settings."""

    id: int
    domain_id: int
    email: str
    forwarding: Forwarding
    autoreply: Autoreply


def _view(uow: UnitOfWork, user: User) -> MailboxSettingsView:
    forward = uow.mailbox_settings.forwarding(user.id)
    reply = uow.mailbox_settings.autoreply(user.id)
    return MailboxSettingsView(
        user.id,
        user.domain_id,
        user.email,
        Forwarding(tuple(forward.destinations.split("\n")), forward.keep_copy)
        if forward is not None
        else Forwarding(),
        Autoreply(reply.enabled, reply.subject, reply.body, reply.starts_on, reply.ends_on)
        if reply is not None
        else Autoreply(),
    )


def find_mailbox(ctx: Context, actor: Actor, user_id: object = None, email: object = None) -> int:
    """The id of the mailbox named by ``user_id`` or ``email`` (one of them), if the
    caller sees its domain; NotFoundError, worded as for no such mailbox, otherwise."""
    given_id = user_id not in (None, "")
    given_email = isinstance(email, str) and bool(email.strip())
    if given_id == given_email:
        raise InvalidInputError("Name the mailbox by 'id' or by 'email' (one of them).")
    if given_email:
        address = parse_address(email)
        missing = f"The mailbox {address.email} does not exist."
        scope.within(actor, address.domain, missing)
        with ctx.uow() as uow:
            user = uow.users.by_email(address.email)
            if user is None:
                raise NotFoundError(missing)
            return user.id
    ident = parse_id(user_id, "user id")
    missing = f"There is no user with id {ident}."
    with ctx.uow() as uow:
        user = uow.users.get(ident)
        if user is None:
            raise NotFoundError(missing)
        scope.within(actor, user.email.rpartition("@")[2], missing)
        return user.id


def get_settings(ctx: Context, user_id: int) -> MailboxSettingsView:
    """A mailbox's forwarding and auto-reply; NotFoundError if it is gone."""
    with ctx.uow() as uow:
        user = uow.users.get(user_id)
        if user is None:
            raise NotFoundError(f"There is no user with id {user_id}.")
        return _view(uow, user)


def parse_destinations(value: object) -> tuple[str, ...]:
    """Addresses separated by commas, spaces or lines (or a list of them), normalised,
    each once, in the order given; empty: no forwarding."""
    if value is None:
        return ()
    if isinstance(value, str):
        parts = [p for p in _SEPARATORS.split(value) if p]
    elif isinstance(value, list) and all(isinstance(p, str) for p in value):
        parts = [p.strip() for p in value if p.strip()]
    else:
        raise InvalidInputError("The destinations must be email addresses.")
    found: list[str] = []
    for part in parts:
        email = parse_address(part).email
        if email not in found:
            found.append(email)
    if len(found) > sieve.MAX_DESTINATIONS:
        raise InvalidInputError(
            f"Mail can be forwarded to {sieve.MAX_DESTINATIONS} addresses at most."
        )
    return tuple(found)


def _loop_through(uow: UnitOfWork, email: str, destinations: tuple[str, ...]) -> str | None:
    """The destination whose forwarding or aliases lead back to ``email``, if one does."""
    for start in destinations:
        seen: set[str] = set()
        frontier = [start]
        for _ in range(_MAX_HOPS):
            if not frontier:
                break
            if email in frontier:
                return start
            seen.update(frontier)
            nxt: list[str] = []
            for dests in uow.mailbox_settings.forwarding_by_email(frontier).values():
                nxt.extend(dests)
            for address in frontier:
                for alias in uow.aliases.by_source(address):
                    nxt.extend(d.strip() for d in alias.destination.split(","))
            frontier = [a for a in dict.fromkeys(nxt) if a and a not in seen]
    return None


def set_forwarding(
    ctx: Context, actor: Actor, user_id: int, destinations: object, keep_copy: bool
) -> MailboxSettingsView:
    """Forward the mailbox's mail to ``destinations`` (none: off), keeping a copy or not.

    Refused (400): the mailbox itself, more than MAX_DESTINATIONS addresses, and any
    destination whose own forwarding or aliases come back to this mailbox.
    """
    wanted = parse_destinations(destinations)
    with ctx.uow() as uow:
        user = uow.users.get(user_id)
        if user is None:
            raise NotFoundError(f"There is no user with id {user_id}.")
        if user.email in wanted:
            raise InvalidInputError(f"{user.email} cannot forward its mail to itself.")
        looped = _loop_through(uow, user.email, wanted)
        if looped is not None:
            raise InvalidInputError(
                f"Mail forwarded to {looped} would come back to {user.email}: that is a loop."
            )
        domain = user.email.rpartition("@")[2]
        row = uow.mailbox_settings.forwarding(user.id)
        if not wanted:
            uow.mailbox_settings.remove_forwarding(user.id)
            detail = "off"
        else:
            if row is None:
                row = MailboxForwarding(user_id=user.id, destinations="", keep_copy=False)
                uow.session.add(row)
            row.destinations = "\n".join(wanted)
            row.keep_copy = bool(keep_copy)
            row.updated_at = time.time()
            detail = f"to {', '.join(wanted)}" + (", keeping a copy" if keep_copy else "")
        uow.audit.record(actor, "set_forwarding", user.email, detail, domain=domain)
        uow.commit()
    ctx.changed(CHANGED)
    return get_settings(ctx, user_id)


def parse_day(value: object, what: str) -> date | None:
    """An ISO 8601 date (``2026-12-24``) or date and time (its day in UTC); empty: None."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str) or len(value) > 40:
        raise InvalidInputError(f"The {what} must be an ISO 8601 date such as 2026-12-24.")
    text = value.strip()
    try:
        if len(text) == 10:
            return date.fromisoformat(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInputError(
            f"The {what} {text[:40]!r} is not an ISO 8601 date such as 2026-12-24."
        ) from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date()


def set_autoreply(
    ctx: Context,
    actor: Actor,
    user_id: int,
    *,
    enabled: bool,
    subject: object = None,
    body: object = None,
    start: object = None,
    end: object = None,
) -> MailboxSettingsView:
    """Turn the mailbox's auto-reply on (with its subject, body and optional first and
    last day, inclusive, UTC) or off (its texts are kept). Turning it on again without
    a subject or body keeps the stored ones."""
    starts, ends = parse_day(start, "start date"), parse_day(end, "end date")
    if starts is not None and ends is not None and ends < starts:
        raise InvalidInputError("The end date comes before the start date.")
    given_subject = subject not in (None, "")
    given_body = body not in (None, "")
    new_subject = sieve.check_subject(subject) if given_subject else None
    new_body = sieve.check_body(body) if given_body else None
    with ctx.uow() as uow:
        user = uow.users.get(user_id)
        if user is None:
            raise NotFoundError(f"There is no user with id {user_id}.")
        row = uow.mailbox_settings.autoreply(user.id)
        if enabled:
            subject_text = new_subject or (row.subject if row is not None else None)
            body_text = new_body or (row.body if row is not None else None)
            if not subject_text or not body_text:
                raise InvalidInputError("An auto-reply needs a subject and a body.")
            if ends is not None and ends < datetime.now(UTC).date():
                raise InvalidInputError("The end date is in the past.")
            if row is None:
                row = MailboxAutoreply(user_id=user.id)
                uow.session.add(row)
            row.subject, row.body = subject_text, body_text
            row.starts_on, row.ends_on = starts, ends
            row.enabled = True
            detail = (
                "on" + (f" from {starts}" if starts else "") + (f" until {ends}" if ends else "")
            )
        else:
            if row is not None:
                row.enabled = False
                if new_subject:
                    row.subject = new_subject
                if new_body:
                    row.body = new_body
            detail = "off"
        if row is not None:
            row.updated_at = time.time()
        uow.audit.record(
            actor, "set_autoreply", user.email, detail, domain=user.email.rpartition("@")[2]
        )
        uow.commit()
    ctx.changed(CHANGED)
    return get_settings(ctx, user_id)

"""Reading the audit log: who changed what, when and from where, filtered and paged.

The log is written by every service that changes something (``uow.audit.record``); this
is its one reader, shared by ``GET /audit`` and ``mailctl audit``. Entries come newest
first, a page at a time, with a cursor: the id of the last entry of a page is where the
next one starts. A superadmin (and the host) reads every entry; a domain admin, or a key
bound to domains, reads only the entries of the domains it sees now, and asking for
another domain answers as for one that does not exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mailctl.domain.names import normalize_domain
from mailctl.errors import InvalidInputError
from mailctl.services import scope
from mailctl.services.context import Context
from mailctl.services.paging import Page, Paged, fetch, read_page
from mailctl.services.scope import Scoped
from mailctl.storage.queries import AuditQuery
from mailctl.storage.reads import Window
from mailctl.storage.tables import AuditEntry

# Entries in a page when no limit is given: the log grows without end, so it is never
# returned whole.
DEFAULT_LIMIT = 100
# The widths of the columns an exact filter compares with: a longer value matches nothing.
MAX_ADMIN = 64
MAX_ACTION = 64

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
# Unix seconds: ASCII digits, with up to six decimals (microseconds, as the log keeps).
_UNIX_SECONDS = re.compile(r"([0-9]{1,11})(?:\.([0-9]{1,6}))?")
# An ISO 8601 date-time has a time: a date alone is refused rather than guessed at.
_TIME_SEPARATOR = re.compile(r"[0-9][Tt ][0-9]")


@dataclass(frozen=True)
class AuditFilters:
    """Which entries to list: any field left None does not narrow them."""

    admin: str | None = None
    domain: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class AuditEntryView:
    """One entry of the audit log, its time in UTC."""

    id: int
    at: datetime
    admin: str
    action: str
    target: str
    domain: str | None
    client_address: str | None
    detail: str | None

    def as_json(self) -> dict[str, Any]:
        """The entry as GET /audit answers it (and `mailctl audit --json` prints it)."""
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "admin": self.admin,
            "action": self.action,
            "target": self.target,
            "domain": self.domain,
            "client_address": self.client_address,
            "detail": self.detail,
        }


def _text(name: str, value: str | None, most: int) -> str | None:
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    if len(text) > most:
        raise InvalidInputError(f"'{name}' must be at most {most} characters.")
    return text


def parse_moment(name: str, value: str | None) -> datetime | None:
    """The moment a ``since`` or ``until`` field names, in UTC; None when it is blank.

    An ISO 8601 date-time (UTC unless it gives an offset) or Unix seconds; anything else
    is an InvalidInputError naming the field.
    """
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    wrong = InvalidInputError(
        f"'{name}' must be an ISO 8601 date-time (such as 2026-12-08T09:30:00Z) or a number "
        "of Unix seconds."
    )
    seconds = _UNIX_SECONDS.fullmatch(text)
    if seconds is not None:
        whole, fraction = seconds.groups()
        micro = int((fraction or "").ljust(6, "0"))
        return EARLIEST + timedelta(seconds=int(whole), microseconds=micro)
    if not text.isascii() or _TIME_SEPARATOR.search(text) is None:
        raise wrong
    try:
        moment = datetime.fromisoformat(text)
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (ValueError, OverflowError) as error:
        raise wrong from error
    if not EARLIEST <= moment <= LATEST:
        raise InvalidInputError(f"'{name}' must be a moment from 1970 to 9999.")
    return moment


def read_filters(
    admin: str | None = None,
    domain: str | None = None,
    action: str | None = None,
    since: str | None = None,
    until: str | None = None,
) -> AuditFilters:
    """The filters the words of a request or a command ask for; InvalidInputError if wrong."""
    name = None if domain is None or domain.strip() == "" else normalize_domain(domain)
    return AuditFilters(
        admin=_text("admin", admin, MAX_ADMIN),
        domain=name,
        action=_text("action", action, MAX_ACTION),
        since=parse_moment("since", since),
        until=parse_moment("until", until),
    )


def read_audit_page(limit: str | None = None, after: str | None = None) -> Page:
    """A page of the log: ``limit`` entries (100 unless given, at most 1,000), those older
    than the entry ``after`` (the ``next_after`` of the page before)."""
    page = read_page(limit=limit, after=after)
    size = DEFAULT_LIMIT if limit is None or limit.strip() == "" else page.limit
    return Page(limit=size, after=page.after)


def _view(entry: AuditEntry) -> AuditEntryView:
    # SQLite and MariaDB hand the time back without its zone: it was stored in UTC.
    at = entry.at.replace(tzinfo=UTC) if entry.at.tzinfo is None else entry.at.astimezone(UTC)
    return AuditEntryView(
        id=entry.id,
        at=at,
        admin=entry.admin,
        action=entry.action,
        target=entry.target,
        domain=entry.domain,
        client_address=entry.client_address,
        detail=entry.detail,
    )


def list_entries(
    ctx: Context, actor: Scoped | None, filters: AuditFilters, page: Page
) -> Paged[AuditEntryView]:
    """One page of the audit entries that match ``filters``, newest first.

    A narrowed scope (a domain admin, a key bound to domains) reads only the entries of
    the domains it sees, and a ``domain`` it does not see is a NotFoundError worded as for
    a domain that does not exist. The host (``actor`` None) and superadmins read all.
    """
    if filters.domain is not None:
        scope.domain_name(actor, filters.domain)
    narrowed = None if actor is None else actor.scope
    granted = keyed = None
    if narrowed is not None and not narrowed.every_domain:
        granted, keyed = narrowed.grants_of, narrowed.key_domains_of
        if granted is None and keyed is None:
            return Paged([], limited=True)  # a scope that names no rows to narrow by sees nothing
    wanted = AuditQuery(
        admin=filters.admin,
        action=filters.action,
        domain=filters.domain,
        since=filters.since,
        until=filters.until,
    )
    with ctx.uow() as uow:

        def read(window: Window) -> list[AuditEntryView]:
            rows = uow.audit.entries(
                wanted,
                before=window.after,
                limit=window.limit,
                granted_to=granted,
                bound_to_key=keyed,
            )
            return [_view(row) for row in rows]

        return fetch(page, read, lambda view: view, lambda view: view.id)

"""Use cases for DKIM keys: add (or return) a domain's key, rotate it, list and remove keys.

Each domain has at most one active key; OpenDKIM's files are rendered from the active
keys by reconcile, which these use cases run after committing. A rotation moves to a new
selector (one derived from the date unless given) and keeps the old key, retired, until
the admin removes it. The private key is read here only to derive its public half; it
leaves the database for the key file alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from mailctl.domain import dkim
from mailctl.domain.dnsrecords import DnsRecord
from mailctl.domain.names import normalize_domain
from mailctl.errors import ConflictError, InvalidInputError, NotFoundError
from mailctl.services.context import Actor, Context
from mailctl.services.reconcile import ReconcileOutcome, reconcile_safely
from mailctl.storage.tables import DkimKey

CREATED = "created"
ROTATED = "rotated"
EXISTING = "existing"


@dataclass(frozen=True)
class DkimKeyView:
    """The public face of a domain's active key: what to publish in DNS."""

    domain: str
    selector: str
    key_type: str
    public: str  # the zone-file stub opendkim-genkey writes to <selector>.txt
    dns: DnsRecord
    active: bool = True  # False: retired by a rotation, no longer signs


@dataclass(frozen=True)
class DkimResult:
    """What add or rotate did (created, rotated, or returned the existing key) and the reload."""

    key: DkimKeyView
    action: str
    reload: ReconcileOutcome
    retired: str | None = None  # a rotation's previous selector, kept for its DNS record


def _view(domain: str, key: DkimKey) -> DkimKeyView:
    return DkimKeyView(
        domain=domain,
        selector=key.selector,
        key_type=key.key_type,
        public=dkim.opendkim_txt(domain, key.selector, key.private_key),
        dns=dkim.dns_record(domain, key.selector, key.private_key),
        active=key.active,
    )


def dated_selector(prefix: str, taken: set[str], now: datetime | None = None) -> str:
    """A selector for a rotation: ``<prefix><year>-<month>`` (``mail2026-11``), unique.

    A second rotation in the same month gets ``-2``, ``-3``, ... so no key of the domain
    ever has its selector, and so its DNS record, taken over.
    """
    moment = now or datetime.now(UTC)
    # Room for the date and a counter within a label's 63 characters.
    stem = f"{prefix[:50]}{moment:%Y-%m}"
    candidate, number = stem, 1
    while candidate in taken:
        number += 1
        candidate = f"{stem}-{number}"
    return dkim.validate_selector(candidate)


def _key_type(value: str | None, default: str) -> str:
    chosen = (value or default).strip().lower()
    if chosen not in dkim.KEY_TYPES:
        raise InvalidInputError(
            f"Unknown DKIM key type {chosen!r}; choose one of {', '.join(dkim.KEY_TYPES)}."
        )
    return chosen


@dataclass(frozen=True)
class DkimRemoval:
    """A removed key: whether it was the signing one, and the reload that followed."""

    domain: str
    selector: str
    was_active: bool
    reload: ReconcileOutcome


def get_key(ctx: Context, domain: str) -> DkimKeyView:
    """The active key's public record; NotFoundError for an unknown domain or one without a key."""
    name = normalize_domain(domain)
    with ctx.uow() as uow:
        row = uow.domains.by_name(name)
        if row is None:
            raise NotFoundError(f"The domain {name} does not exist.")
        key = uow.dkim_keys.active_for_domain(row.id)
        if key is None:
            raise NotFoundError(f"The domain {name} has no DKIM key.")
        return _view(name, key)


def add_key(
    ctx: Context,
    actor: Actor,
    domain: str,
    selector: str | None = None,
    key_type: str | None = None,
    rotate: bool = False,
) -> DkimResult:
    """Give ``domain`` a DKIM key, or return the one it has; then reconcile this host.

    Without ``rotate`` a domain that has an active key keeps it and gets it back unchanged
    (``selector`` and ``key_type`` only apply to a new key), so the call is safe to repeat.
    A new key without ``selector`` takes the configured one, or a dated one (below) when
    a retired key of the domain has it.

    With ``rotate`` a new key replaces the active one, under a new selector: ``selector``,
    or one derived from the date (``mail2026-11``, after the configured selector) that no
    key of the domain has. The old key is deactivated and kept, so its DNS record can stay
    published until mail signed with it has been delivered, while the new record is added
    beside it; ``retired`` names it. ``key_type`` defaults to the current key's. Only when
    ``selector`` names the current key's selector does the new key take the old one's
    place: its DNS record must then be updated at once, and mail signed with the old key
    and still in transit no longer verifies.

    The change is committed before reconcile runs: a reload that fails is reported in
    ``reload`` (the daemon keeps its previous files) and does not undo the stored key.
    """
    name = normalize_domain(domain)
    wanted_selector = dkim.validate_selector(selector) if selector else None
    if key_type:
        _key_type(key_type, ctx.settings.dkim_key_type)  # refuse a bad type before any work
    with ctx.uow() as uow:
        row = uow.domains.by_name(name)
        if row is None:
            raise NotFoundError(f"The domain {name} does not exist.")
        current = uow.dkim_keys.active_for_domain(row.id)
        existing = _view(name, current) if current is not None and not rotate else None
        new_selector: str | None
        if existing is not None or current is None:
            new_selector = wanted_selector or dkim.validate_selector(ctx.settings.dkim_selector)
            new_type = _key_type(key_type, ctx.settings.dkim_key_type)
        else:
            new_selector = wanted_selector  # None: a dated one, picked under the lock
            new_type = _key_type(key_type, current.key_type)
        replaced = current.selector if current is not None else None
    if existing is not None:
        # Reconcile anyway: it is how a lost key file or table line comes back.
        return DkimResult(existing, EXISTING, reconcile_safely(ctx))
    # Key generation (a second for rsa4096) happens outside any transaction.
    private_pem = dkim.generate_key(new_type)
    action = CREATED if replaced is None else ROTATED
    with ctx.uow() as uow:
        row = uow.domains.by_name(name)
        if row is None or not uow.dkim_keys.lock_domain(row.id):
            raise NotFoundError(f"The domain {name} does not exist.")
        current = uow.dkim_keys.active_for_domain(row.id)
        raced = current is not None and current.selector != replaced
        if raced and rotate:
            raise ConflictError(f"The DKIM key of {name} changed meanwhile; try again.")
        if raced and current is not None:
            # Another request gave the domain its first key since we looked: that one stands.
            view = _view(name, current)
            action = EXISTING
        else:
            others = uow.dkim_keys.for_domain(row.id)
            taken = {k.selector for k in others}
            # A selector nobody asked for never takes over a retired key's: its record may
            # still be published for mail in transit.
            if new_selector is None or (wanted_selector is None and new_selector in taken):
                prefix = dkim.validate_selector(ctx.settings.dkim_selector)
                new_selector = dated_selector(prefix, taken)
            for old in others:
                if old.selector == new_selector:
                    uow.dkim_keys.delete(old)  # a selector names one key per domain
            uow.dkim_keys.deactivate_all(row.id)
            key = uow.dkim_keys.add(row.id, new_selector, new_type, private_pem)
            detail = f"selector {new_selector}, {new_type}"
            if replaced == new_selector:
                detail += f"; replaces selector {replaced}"
            elif replaced is not None:
                detail += f"; retires selector {replaced}"
            uow.audit.record(
                actor,
                "rotate_dkim_key" if replaced is not None else "create_dkim_key",
                name,
                detail,
                domain=name,
            )
            view = _view(name, key)
            uow.commit()
    retired = replaced if action == ROTATED and replaced != view.selector else None
    return DkimResult(view, action, ctx.changed("dkim"), retired)


def rotate_key(
    ctx: Context,
    actor: Actor,
    domain: str,
    selector: str | None = None,
    key_type: str | None = None,
) -> DkimResult:
    """Replace ``domain``'s key with a new one (see ``add_key`` with ``rotate``)."""
    return add_key(ctx, actor, domain, selector, key_type, rotate=True)


def list_keys(ctx: Context, domain: str) -> tuple[str, list[DkimKeyView]]:
    """The domain's name and every key of it: the active one first, then retired ones."""
    name = normalize_domain(domain)
    with ctx.uow() as uow:
        row = uow.domains.by_name(name)
        if row is None:
            raise NotFoundError(f"The domain {name} does not exist.")
        keys = sorted(uow.dkim_keys.for_domain(row.id), key=lambda k: (k.active, k.id))
        return name, [_view(name, key) for key in reversed(keys)]


def remove_key(ctx: Context, actor: Actor, domain: str, selector: str) -> DkimRemoval:
    """Delete the key ``selector`` of ``domain``; then reconcile this host.

    Removing a retired key (once its DNS record is gone and no mail signed with it is in
    transit) changes nothing OpenDKIM reads. Removing the active key stops the signing of
    the domain's mail: no retired key takes its place, since its DNS record may be gone.
    """
    name = normalize_domain(domain)
    wanted = dkim.validate_selector(selector)
    with ctx.uow() as uow:
        row = uow.domains.by_name(name)
        if row is None or not uow.dkim_keys.lock_domain(row.id):
            raise NotFoundError(f"The domain {name} does not exist.")
        key = next((k for k in uow.dkim_keys.for_domain(row.id) if k.selector == wanted), None)
        if key is None:
            raise NotFoundError(f"The domain {name} has no DKIM key with the selector {wanted}.")
        was_active = key.active
        uow.dkim_keys.delete(key)
        uow.audit.record(
            actor,
            "delete_dkim_key",
            name,
            f"selector {wanted}" + ("; was signing" if was_active else "; retired"),
            domain=name,
        )
        uow.commit()
    return DkimRemoval(name, wanted, was_active, ctx.changed("dkim"))

"""API keys: long-lived credentials for scripts, each narrower than the admin it acts for.

A key is ``mailctl_<id>_<secret>``: the id finds its row, the secret is compared with the
stored SHA-256 in constant time. It is shown once, when made. A key acts as its admin,
narrowed to some of that admin's domains (or all of them), to reading, to an expiry and
optionally to client address ranges. Revoking a key, disabling or deleting its admin, or
taking a domain back stops it at the next request on every API process (the token
cache's revocation stamp); an expired key stops by its own expiry.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from mailctl.errors import ForbiddenError, InvalidInputError, NotFoundError
from mailctl.services.admins import domain_names
from mailctl.services.auth import (
    KEY_PREFIX,
    AdminIdentity,
    KeyIdentity,
    Network,
    key_digest,
    scope_of,
)
from mailctl.services.context import Actor, Context
from mailctl.services.scope import Scope, require_superadmin
from mailctl.storage.tables import ApiKey, ApiKeyDomain

MAX_NETWORKS = 32
MAX_DAYS = 3650
DEFAULT_DAYS = 365


@dataclass(frozen=True)
class ApiKeyView:
    """A key as its admin sees it: never its secret."""

    id: str
    name: str
    admin: str
    domains: tuple[str, ...] | None  # None: every domain its admin sees
    read_only: bool
    networks: tuple[str, ...]
    created: datetime
    expires: datetime | None


@dataclass(frozen=True)
class NewApiKey:
    """A key just made: the whole key, shown this once, and what it may do."""

    key: str
    view: ApiKeyView


def _at(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, UTC)


def parse_networks(value: object) -> tuple[Network, ...]:
    """Address ranges from a comma- or space-separated text (``192.0.2.0/24, 2001:db8::1``)."""
    if value is None or value == "":
        return ()
    if not isinstance(value, str):
        raise InvalidInputError("The networks must be address ranges separated by commas.")
    found: list[Network] = []
    for part in value.replace(",", " ").split():
        try:
            network = ipaddress.ip_network(part, strict=False)
        except ValueError:
            raise InvalidInputError(
                f"{part[:64]!r} is not an address range (e.g. 192.0.2.0/24 or 2001:db8::/32)."
            ) from None
        if network not in found:
            found.append(network)
    if len(found) > MAX_NETWORKS:
        raise InvalidInputError(f"A key takes at most {MAX_NETWORKS} address ranges.")
    return tuple(found)


def _days(value: object) -> int:
    if value is None or value == "":
        return DEFAULT_DAYS
    try:
        days = int(str(value).strip())
    except ValueError:
        raise InvalidInputError("expires_days must be a whole number of days.") from None
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInputError(f"expires_days must be between 1 and {MAX_DAYS}.")
    return days


def _name(value: object) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name or len(name) > 64 or any(ord(ch) < 32 for ch in name):
        raise InvalidInputError("Give the key a name of 1 to 64 characters (what it is for).")
    return name


def _access(value: object) -> bool:
    """True for a read-only key."""
    text = (value if isinstance(value, str) else "write").strip().lower() or "write"
    if text not in ("read", "write"):
        raise InvalidInputError("access must be read or write.")
    return text == "read"


def _domains(value: object) -> list[str] | None:
    """Domain names, or None for every domain its admin sees (empty or ``*``)."""
    if value is None or (isinstance(value, str) and value.strip() in ("", "*")):
        return None
    return domain_names(value)


def _view(key: ApiKey, admin: str, domains: list[str] | None) -> ApiKeyView:
    networks = tuple(n for n in (key.networks or "").split(",") if n)
    return ApiKeyView(
        key.key_id,
        key.name,
        admin,
        None if domains is None else tuple(domains),
        key.read_only,
        networks,
        _at(key.created_at) or datetime.now(UTC),
        _at(key.expires_at),
    )


def create_key(
    ctx: Context,
    actor: Actor,
    *,
    name: object,
    admin: object = None,
    domains: object = None,
    access: object = None,
    expires_days: object = None,
    networks: object = None,
) -> NewApiKey:
    """Make a key for the acting admin, or (a superadmin) for another admin ``admin``.

    Its domains must be ones the key's admin sees (and the actor too): another is a 404,
    as everywhere. Read-only callers cannot make keys (they change something).
    """
    key_name = _name(name)
    read_only = _access(access)
    days = _days(expires_days)
    ranges = parse_networks(networks)
    names = _domains(domains)
    owner_name = admin.strip() if isinstance(admin, str) and admin.strip() else actor.name
    if owner_name != actor.name:
        require_superadmin(actor, "make keys for other admins")
    now = time.time()
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    with ctx.uow() as uow:
        owner = uow.admins.by_username(owner_name)
        if owner is None:
            raise NotFoundError(f"There is no admin {owner_name}.")
        owner_scope = scope_of(uow, owner)
        ids: list[int] = []
        for domain_name in names or []:
            domain = uow.domains.by_name(domain_name)
            visible = (
                domain is not None
                and owner_scope.sees_id(domain.id)
                and (actor.scope is None or actor.scope.sees_id(domain.id))
            )
            if domain is None or not visible:
                raise NotFoundError(f"The domain {domain_name} does not exist.")
            ids.append(domain.id)
        row = ApiKey(
            key_id=key_id,
            secret_hash=key_digest(secret),
            admin_id=owner.id,
            name=key_name,
            read_only=read_only,
            all_domains=names is None,
            networks=",".join(str(n) for n in ranges) or None,
            created_at=now,
            expires_at=now + days * 86400,
            created_by=actor.name[:64],
        )
        uow.session.add(row)
        uow.flush()
        for domain_id in ids:
            uow.session.add(ApiKeyDomain(key_id=row.id, domain_id=domain_id))
        detail = (
            f"key={key_id} access={'read' if read_only else 'write'} days={days} "
            f"domains={','.join(names) if names is not None else '*'}"
        )
        uow.audit.record(actor, "create_api_key", owner.username, detail)
        uow.commit()
        view = _view(row, owner.username, names)
    return NewApiKey(f"{KEY_PREFIX}{key_id}_{secret}", view)


def _reaches(scope: Scope | None, domains: list[str] | None) -> bool:
    """Whether a caller may see and revoke a key bound to ``domains`` (None: all its admin's).

    A key bound to some domains reaches only the keys bound within them: its admin's wider
    keys, and those of its other domains, are as unknown to it as the domains themselves.
    """
    if scope is None or scope.key_domains_of is None:
        return True
    return domains is not None and all(scope.sees_name(name) for name in domains)


def list_keys(ctx: Context, actor: Actor, admin: object = None) -> list[ApiKeyView]:
    """The keys still valid of the acting admin, or of ``admin`` (``*``: of every admin)
    for a superadmin, without their secrets; a key bound to domains lists only the keys
    bound within those."""
    wanted = admin.strip() if isinstance(admin, str) and admin.strip() else actor.name
    if wanted != actor.name:
        require_superadmin(actor, "list other admins' keys")
    now = time.time()
    with ctx.uow() as uow:
        rows = uow.api_keys.active(None if wanted == "*" else wanted, now)
        domains = uow.api_keys.domains_of([key.id for key, _ in rows])
        bound = {key.id: None if key.all_domains else domains.get(key.id, []) for key, _ in rows}
        return [
            _view(key, owner, bound[key.id])
            for key, owner in rows
            if _reaches(actor.scope, bound[key.id])
        ]


def revoke_key(ctx: Context, actor: Actor, key_id: object) -> ApiKeyView:
    """Revoke a key of the acting admin (a superadmin: any key); it stops at once. A key
    bound to domains revokes only keys bound within those (another is not found)."""
    wanted = key_id.strip() if isinstance(key_id, str) else ""
    if wanted.startswith(KEY_PREFIX):
        wanted = wanted[len(KEY_PREFIX) :].split("_", 1)[0]
    wanted = wanted[:33]  # no id is longer than 32: a longer one is simply not found
    missing = f"There is no active API key with id {wanted[:32]}."
    with ctx.uow() as uow:
        found = uow.api_keys.with_admin(wanted) if wanted else None
        if found is None or found[0].revoked_at is not None:
            raise NotFoundError(missing)
        key, owner = found
        superadmin = actor.scope is None or actor.scope.superadmin
        if owner.username != actor.name and not superadmin:
            raise NotFoundError(missing)
        bound = None if key.all_domains else uow.api_keys.domains_of([key.id]).get(key.id, [])
        if not _reaches(actor.scope, bound):
            raise NotFoundError(missing)
        key.revoked_at = time.time()
        uow.audit.record(actor, "revoke_api_key", owner.username, f"key={key.key_id}")
        uow.commit()
        view = _view(key, owner.username, bound)
    ctx.tokens.revoked()
    return view


def refuse_for_keys(identity: AdminIdentity, what: str) -> None:
    """ForbiddenError for a request made with a key, on what only a login may do."""
    if isinstance(identity, KeyIdentity):
        raise ForbiddenError(f"An API key cannot {what}; log in at POST /auth for that.")

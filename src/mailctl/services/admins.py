"""The admin accounts: superadmins and domain admins, and the domains granted to them.

Only a superadmin (or the host's CLI) manages admins. The last enabled superadmin can be
neither disabled, deleted nor made a domain admin, so the server always keeps someone
who can manage it. Any change to an admin's rights reaches every API process at the next
request (the token cache is told, as for a revoked token).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailctl.domain import passwords
from mailctl.domain.names import normalize_domain
from mailctl.errors import ConflictError, InvalidInputError, NotFoundError
from mailctl.services.auth import validate_admin_username
from mailctl.services.context import Actor, Context
from mailctl.services.scope import DOMAIN_ADMIN, ROLES, SUPERADMIN, require_superadmin
from mailctl.storage.tables import Admin
from mailctl.storage.uow import UnitOfWork

LAST_SUPERADMIN = (
    "{name} is the last enabled superadmin: make or enable another superadmin first, "
    "so that someone can still manage this server."
)


@dataclass(frozen=True)
class AdminView:
    """An admin as a superadmin sees it: never its password or tokens."""

    id: int
    username: str
    role: str
    disabled: bool
    domains: tuple[str, ...]
    created_at: datetime | None


def check_role(value: object) -> str:
    role = (value if isinstance(value, str) else "").strip().lower().replace("-", "_")
    if role not in ROLES:
        raise InvalidInputError(f"The role must be one of: {', '.join(ROLES)}.")
    return role


def domain_names(value: object) -> list[str]:
    """Domain names from a list or a comma- or space-separated text."""
    if value is None:
        return []
    if isinstance(value, str):
        parts: list[object] = list(value.replace(",", " ").split())
    elif isinstance(value, list | tuple):
        parts = list(value)
    else:
        raise InvalidInputError("The domains must be names separated by commas.")
    names: list[str] = []
    for part in parts:
        name = normalize_domain(part)
        if name not in names:
            names.append(name)
    return names


def _view(admin: Admin, domains: list[str]) -> AdminView:
    return AdminView(
        admin.id, admin.username, admin.role, admin.disabled, tuple(domains), admin.created_at
    )


def _current(uow: UnitOfWork, admin: Admin) -> AdminView:
    """The admin as it stands in this transaction, with its granted domains."""
    return _view(admin, list(uow.admins.granted(admin.id).values()))


def _admin(uow: UnitOfWork, username: object) -> Admin:
    name = username.strip() if isinstance(username, str) else ""
    admin = uow.admins.by_username(name) if name else None
    if admin is None:
        raise NotFoundError(f"There is no admin {name}.")
    return admin


def _domain_ids(uow: UnitOfWork, names: list[str]) -> list[int]:
    ids = []
    for name in names:
        domain = uow.domains.by_name(name)
        if domain is None:
            raise NotFoundError(f"The domain {name} does not exist.")
        ids.append(domain.id)
    return ids


def list_admins(ctx: Context, actor: Actor) -> list[AdminView]:
    require_superadmin(actor, "list the admins")
    with ctx.uow() as uow:
        grants = uow.admins.grants()
        return [_view(a, grants.get(a.id, [])) for a in uow.admins.list()]


def get_admin(ctx: Context, actor: Actor, username: object) -> AdminView:
    require_superadmin(actor, "see other admins")
    with ctx.uow() as uow:
        admin = _admin(uow, username)
        return _current(uow, admin)


def create_admin(
    ctx: Context,
    actor: Actor,
    username: object,
    password: object,
    role: object = SUPERADMIN,
    domains: object = None,
) -> AdminView:
    """Add an admin; a domain admin may be granted its first domains at once."""
    require_superadmin(actor, "create admins")
    name = validate_admin_username(username)
    wanted_role = check_role(role)
    names = domain_names(domains)
    if names and wanted_role != DOMAIN_ADMIN:
        raise InvalidInputError("Only a domain admin is granted domains: a superadmin has all.")
    plain = passwords.check_new_password(password, ctx.settings.min_password_length)
    hashed = ctx.passwords.hash(plain)
    with ctx.uow() as uow:
        if uow.admins.by_username(name) is not None:
            raise ConflictError(f"The admin {name} exists already.")
        ids = _domain_ids(uow, names)
        admin = uow.admins.add(name, hashed, wanted_role)
        for domain_id in ids:
            uow.admins.grant(admin.id, domain_id)
        detail = f"role={wanted_role}" + (f" domains={','.join(names)}" if names else "")
        uow.audit.record(actor, "create_admin", name, detail)
        uow.commit()
        return _view(admin, names)


def _keep_a_superadmin(uow: UnitOfWork, admin: Admin) -> None:
    if admin.role == SUPERADMIN and not admin.disabled and uow.admins.enabled_superadmins() <= 1:
        raise ConflictError(LAST_SUPERADMIN.format(name=admin.username))


def delete_admin(ctx: Context, actor: Actor, username: object) -> None:
    """Remove an admin; its tokens and keys stop working at once."""
    require_superadmin(actor, "delete admins")
    with ctx.uow() as uow:
        admin = _admin(uow, username)
        _keep_a_superadmin(uow, admin)
        name = admin.username
        uow.admins.delete(admin)
        uow.audit.record(actor, "delete_admin", name)
        uow.commit()
    ctx.tokens.revoked()


def set_disabled(ctx: Context, actor: Actor, username: object, disabled: bool) -> AdminView:
    """Disable an admin (it can no longer log in, nor use a token or key) or enable it."""
    require_superadmin(actor, "disable or enable admins")
    with ctx.uow() as uow:
        admin = _admin(uow, username)
        if disabled:
            _keep_a_superadmin(uow, admin)
        admin.disabled = disabled
        uow.audit.record(actor, "disable_admin" if disabled else "enable_admin", admin.username)
        uow.commit()
        view = _current(uow, admin)
    ctx.tokens.revoked()
    return view


def set_role(ctx: Context, actor: Actor, username: object, role: object) -> AdminView:
    """Make an admin a superadmin or a domain admin; a domain admin keeps its grants."""
    require_superadmin(actor, "change roles")
    wanted = check_role(role)
    with ctx.uow() as uow:
        admin = _admin(uow, username)
        if wanted != SUPERADMIN:
            _keep_a_superadmin(uow, admin)
        admin.role = wanted
        uow.audit.record(actor, "set_admin_role", admin.username, f"role={wanted}")
        uow.commit()
        view = _current(uow, admin)
    ctx.tokens.revoked()
    return view


def grant(ctx: Context, actor: Actor, username: object, domains: object) -> AdminView:
    """Grant domains to a domain admin (granting one it has already is no error)."""
    require_superadmin(actor, "grant domains")
    names = domain_names(domains)
    if not names:
        raise InvalidInputError("Name the domain(s) to grant.")
    with ctx.uow() as uow:
        admin = _admin(uow, username)
        if admin.role != DOMAIN_ADMIN:
            raise InvalidInputError(
                f"{admin.username} is a superadmin, which has every domain: grant domains "
                "to a domain admin."
            )
        for domain_id, name in zip(_domain_ids(uow, names), names, strict=True):
            if uow.admins.grant(admin.id, domain_id):
                uow.audit.record(
                    actor, "grant_domain", admin.username, f"domain={name}", domain=name
                )
        uow.commit()
        view = _current(uow, admin)
    ctx.tokens.revoked()
    return view


def revoke(ctx: Context, actor: Actor, username: object, domains: object) -> AdminView:
    """Take domains back from a domain admin; at once for its tokens and keys."""
    require_superadmin(actor, "take domains back")
    names = domain_names(domains)
    if not names:
        raise InvalidInputError("Name the domain(s) to take back.")
    with ctx.uow() as uow:
        admin = _admin(uow, username)
        granted = uow.admins.granted(admin.id)
        by_name = {name: ident for ident, name in granted.items()}
        for name in names:
            if name not in by_name:
                raise NotFoundError(f"The domain {name} is not granted to {admin.username}.")
        for name in names:
            uow.admins.ungrant(admin.id, by_name[name])
            uow.audit.record(actor, "revoke_domain", admin.username, f"domain={name}", domain=name)
        uow.commit()
        view = _current(uow, admin)
    ctx.tokens.revoked()
    return view

"""``/admins``, ``/admin/...``: the admin accounts and their domains (superadmins only);
``/auth/keys``: API keys; ``/auth/me``: who the request's token or key speaks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mailctl.api.bodies import (
    AdminChanged,
    AdminList,
    ApiKeyCreated,
    ApiKeyList,
    ApiKeyRevoked,
    Done,
    WhoAmI,
)
from mailctl.api.deps import ActorDep, ContextDep, CurrentAdminDep, parsed
from mailctl.api.fields import Note
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.services import admins, api_keys, auth
from mailctl.services.admins import AdminView
from mailctl.services.api_keys import ApiKeyView

router = APIRouter(tags=["admins"], route_class=JSONRoute)

DOMAINS_NOTE = "domain names separated by commas"


@dataclass(frozen=True)
class NewAdmin:
    """The fields of create_admin."""

    username: str
    password: str
    role: Annotated[str | None, Note("superadmin (the default) or domain_admin")] = None
    domains: Annotated[str | None, Note("for a domain admin: " + DOMAINS_NOTE)] = None


@dataclass(frozen=True)
class AdminName:
    """An admin, by username."""

    username: str


@dataclass(frozen=True)
class AdminRole:
    """The fields of set_admin_role."""

    username: str
    role: Annotated[str, Note("superadmin or domain_admin")]


@dataclass(frozen=True)
class AdminDomains:
    """The fields of grant_domains and revoke_domains."""

    username: str
    domains: Annotated[str, Note(DOMAINS_NOTE)]


@dataclass(frozen=True)
class NewKey:
    """The fields of create_api_key."""

    name: Annotated[str, Note("what the key is for")]
    domains: Annotated[str | None, Note(DOMAINS_NOTE + "; empty or * for all")] = None
    access: Annotated[str | None, Note("read or write (the default)")] = None
    expires_days: Annotated[str | None, Note("days until it expires, 1-3650 (365)")] = None
    networks: Annotated[str | None, Note("client address ranges, e.g. 192.0.2.0/24")] = None
    admin: Annotated[str | None, Note("a superadmin: make it for this admin")] = None


@dataclass(frozen=True)
class KeyFilter:
    """The fields of list_api_keys."""

    admin: Annotated[str | None, Note("a superadmin: this admin's keys, or * for all")] = None


@dataclass(frozen=True)
class KeyToRevoke:
    """The fields of revoke_api_key."""

    id: Annotated[str, Note("a key id from GET /auth/keys")]


def admin_json(view: AdminView) -> dict[str, Any]:
    return {
        "username": view.username,
        "role": view.role,
        "disabled": view.disabled,
        "domains": list(view.domains),
        "created_at": view.created_at.isoformat() if view.created_at else None,
    }


def key_json(view: ApiKeyView) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "admin": view.admin,
        "domains": None if view.domains is None else list(view.domains),
        "access": "read" if view.read_only else "write",
        "networks": list(view.networks),
        "created": view.created.isoformat(),
        "expires": view.expires.isoformat() if view.expires else None,
    }


def _changed(message: str, view: AdminView) -> dict[str, Any]:
    return {"result": True, "msg": message, "admin": admin_json(view)}


@router.get("/auth/me", **answers(WhoAmI, 401, 503))
def who_am_i(admin: CurrentAdminDep) -> dict[str, Any]:
    """Who the token or key of this request speaks for, and which domains it may touch."""
    scope = admin.scope
    domains = None if scope.domains is None else sorted(scope.domains.values())
    key = admin.key_id if isinstance(admin, auth.KeyIdentity) else None
    return {
        "result": True,
        "admin": {
            "username": admin.username,
            "role": scope.role,
            "domains": domains,
            "read_only": scope.read_only,
            "api_key": key,
        },
    }


@router.get("/admins", **answers(AdminList, 401, 503))
def list_admins(ctx: ContextDep, actor: ActorDep) -> dict[str, Any]:
    """Every admin: role, whether disabled, and a domain admin's domains (superadmins)."""
    return {"result": True, "admins": [admin_json(v) for v in admins.list_admins(ctx, actor)]}


@router.post("/admins", **answers(AdminChanged, 400, 401, 404, 409, 413, 503))
def create_admin(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[NewAdmin, Depends(parsed(NewAdmin))]
) -> dict[str, Any]:
    """Add an admin: a superadmin, or a domain admin granted ``domains`` (superadmins)."""
    view = admins.create_admin(
        ctx, actor, fields.username, fields.password, fields.role or "superadmin", fields.domains
    )
    return _changed(f"The admin {view.username} was created.", view)


@router.delete("/admins", **answers(Done, 400, 401, 404, 409, 413, 503))
def delete_admin(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[AdminName, Depends(parsed(AdminName))]
) -> dict[str, Any]:
    """Delete an admin; its tokens and keys stop working at once (superadmins)."""
    admins.delete_admin(ctx, actor, fields.username)
    return {"result": True, "msg": f"The admin {fields.username.strip()} was deleted."}


@router.post("/admin/disable", **answers(AdminChanged, 400, 401, 404, 409, 413, 503))
def disable_admin(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[AdminName, Depends(parsed(AdminName))]
) -> dict[str, Any]:
    """Disable an admin: no login, and its tokens and keys are refused (superadmins)."""
    view = admins.set_disabled(ctx, actor, fields.username, True)
    return _changed(f"The admin {view.username} is disabled.", view)


@router.post("/admin/enable", **answers(AdminChanged, 400, 401, 404, 413, 503))
def enable_admin(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[AdminName, Depends(parsed(AdminName))]
) -> dict[str, Any]:
    """Enable a disabled admin again (superadmins)."""
    view = admins.set_disabled(ctx, actor, fields.username, False)
    return _changed(f"The admin {view.username} is enabled.", view)


@router.post("/admin/role", **answers(AdminChanged, 400, 401, 404, 409, 413, 503))
def set_admin_role(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[AdminRole, Depends(parsed(AdminRole))]
) -> dict[str, Any]:
    """Make an admin a superadmin or a domain admin (superadmins)."""
    view = admins.set_role(ctx, actor, fields.username, fields.role)
    return _changed(f"The admin {view.username} is now a {view.role}.", view)


@router.post("/admin/domains", **answers(AdminChanged, 400, 401, 404, 413, 503))
def grant_domains(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[AdminDomains, Depends(parsed(AdminDomains))],
) -> dict[str, Any]:
    """Grant domains to a domain admin (superadmins)."""
    view = admins.grant(ctx, actor, fields.username, fields.domains)
    return _changed(f"The admin {view.username} now has: {', '.join(view.domains)}.", view)


@router.delete("/admin/domains", **answers(AdminChanged, 400, 401, 404, 413, 503))
def revoke_domains(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[AdminDomains, Depends(parsed(AdminDomains))],
) -> dict[str, Any]:
    """Take domains back from a domain admin, at once for its tokens and keys."""
    view = admins.revoke(ctx, actor, fields.username, fields.domains)
    left = ", ".join(view.domains) or "no domain"
    return _changed(f"The admin {view.username} now has: {left}.", view)


@router.post("/auth/keys", **answers(ApiKeyCreated, 400, 401, 404, 413, 503))
def create_api_key(
    ctx: ContextDep,
    admin: CurrentAdminDep,
    actor: ActorDep,
    fields: Annotated[NewKey, Depends(parsed(NewKey))],
) -> dict[str, Any]:
    """Make an API key, shown this once: for scripts, in ``Auth-token`` or as a bearer
    token; bound to some of your domains or all, to read or write, to an expiry, and
    optionally to client address ranges."""
    api_keys.refuse_for_keys(admin, "make other keys")
    made = api_keys.create_key(
        ctx,
        actor,
        name=fields.name,
        admin=fields.admin,
        domains=fields.domains,
        access=fields.access,
        expires_days=fields.expires_days,
        networks=fields.networks,
    )
    return {
        "result": True,
        "msg": f"The key {made.view.id} was made; it is shown this once, keep it safe.",
        "key": made.key,
        "api_key": key_json(made.view),
    }


@router.get("/auth/keys", **answers(ApiKeyList, 400, 401, 413, 503))
def list_api_keys(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[KeyFilter, Depends(parsed(KeyFilter))]
) -> dict[str, Any]:
    """Your keys that still work (a superadmin: another admin's, or ``*`` for all)."""
    views = api_keys.list_keys(ctx, actor, fields.admin)
    return {"result": True, "keys": [key_json(v) for v in views]}


@router.delete("/auth/keys", **answers(ApiKeyRevoked, 400, 401, 404, 413, 503))
def revoke_api_key(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[KeyToRevoke, Depends(parsed(KeyToRevoke))]
) -> dict[str, Any]:
    """Revoke a key: it is refused from the next request on, on every API process."""
    view = api_keys.revoke_key(ctx, actor, fields.id)
    return {"result": True, "msg": f"The key {view.id} was revoked.", "api_key": key_json(view)}

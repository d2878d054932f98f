"""DKIM keys: add (or return) a domain's key, rotate it, show its DNS record, list, remove."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mailctl.api.bodies import DkimKey, DkimKeyAdded, DkimKeyList, DkimKeyRemoved
from mailctl.api.deps import ActorDep, ContextDep, parsed
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.api.shapes import reload_json
from mailctl.services import dkim, scope
from mailctl.services.dkim import DkimKeyView

router = APIRouter(tags=["dkim"], route_class=JSONRoute)

_MESSAGES = {
    dkim.CREATED: "A DKIM key was created for {domain}; publish the DNS record.",
    dkim.ROTATED: "The DKIM key of {domain} was replaced under the same selector; update "
    "its DNS record now: mail signed with the old key no longer verifies.",
    dkim.EXISTING: "The domain {domain} has a DKIM key already; here it is.",
}


@dataclass(frozen=True)
class NewKey:
    """The fields of add_dkim_key."""

    domain: str
    selector: str | None = None
    key_type: str | None = None
    rotate: bool = False


@dataclass(frozen=True)
class KeyOfDomain:
    """The fields of show_dkim_key_by_field."""

    domain: str


@dataclass(frozen=True)
class KeyToRemove:
    """The fields of remove_dkim_key."""

    domain: str
    selector: str


def key_json(view: DkimKeyView) -> dict[str, Any]:
    """The public parts of a key; never the private key."""
    return {
        "domain": view.domain,
        "selector": view.selector,
        "key_type": view.key_type,
        "public": view.public,
        "dns": {"name": view.dns.name, "type": view.dns.type, "value": view.dns.value},
    }


def listed_key_json(view: DkimKeyView) -> dict[str, Any]:
    """One key of a domain's list: its public parts and whether it signs."""
    listed = key_json(view)
    del listed["domain"]
    return {**listed, "active": view.active}


@router.post(
    "/dkim/add-new-domain",
    **answers(DkimKeyAdded, 400, 401, 404, 409, 413, 503),
)
def add_dkim_key(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[NewKey, Depends(parsed(NewKey))]
) -> dict[str, Any]:
    """Give a domain a DKIM key (or return its key); ``rotate=true`` makes a new one.

    A rotation signs with the new key under ``selector``, or by default under a new one
    derived from the date (``mail2026-11``, unique for the domain); the previous key is
    retired, named in ``retired_selector``: it no longer signs, and its DNS record stays
    published until mail signed with it has arrived (then ``DELETE /dkim``). Naming the
    current selector replaces its key in place.

    ``result`` is true once the key is stored, even when OpenDKIM refused its reload: the
    key is committed and its DNS record valid, the daemon keeps its previous files, and
    ``reload.failures`` says what went wrong (the next reconcile tries again).
    """
    scope.domain_name(actor, fields.domain)
    result = dkim.add_key(
        ctx,
        actor,
        fields.domain,
        fields.selector or None,
        fields.key_type or None,
        rotate=fields.rotate,
    )
    message = _MESSAGES[result.action].format(domain=result.key.domain)
    extra: dict[str, Any] = {}
    if result.retired is not None:
        message = (
            f"The DKIM key of {result.key.domain} was rotated to the new selector "
            f"{result.key.selector}; publish its DNS record beside the one of the retired "
            f"key {result.retired}, which stays until mail signed with it has arrived."
        )
        extra["retired_selector"] = result.retired
    if not result.reload.ok:
        message += " OpenDKIM was not updated on this host; see reload."
    return {
        "result": True,
        "msg": message,
        **key_json(result.key),
        **extra,
        "reload": reload_json(result.reload),
    }


@router.get("/dkim", **answers(DkimKey, 400, 401, 404, 413, 503))
def show_dkim_key_by_field(
    ctx: ContextDep, _actor: ActorDep, fields: Annotated[KeyOfDomain, Depends(parsed(KeyOfDomain))]
) -> dict[str, Any]:
    """The DNS record of a domain's active DKIM key (``domain`` as a field)."""
    scope.domain_name(_actor, fields.domain)
    return {"result": True, **key_json(dkim.get_key(ctx, fields.domain))}


@router.get("/dkim/{domain}", **answers(DkimKey, 400, 401, 404, 503))
def show_dkim_key(domain: str, ctx: ContextDep, _actor: ActorDep) -> dict[str, Any]:
    """The DNS record of a domain's active DKIM key."""
    scope.domain_name(_actor, domain)
    return {"result": True, **key_json(dkim.get_key(ctx, domain))}


@router.get("/dkim/{domain}/keys", **answers(DkimKeyList, 400, 401, 404, 503))
def list_dkim_keys(domain: str, ctx: ContextDep, _actor: ActorDep) -> dict[str, Any]:
    """Every key of a domain: the active one first, then those retired by a rotation."""
    scope.domain_name(_actor, domain)
    name, keys = dkim.list_keys(ctx, domain)
    return {"result": True, "domain": name, "keys": [listed_key_json(k) for k in keys]}


@router.delete(
    "/dkim",
    **answers(DkimKeyRemoved, 400, 401, 404, 413, 503),
)
def remove_dkim_key(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[KeyToRemove, Depends(parsed(KeyToRemove))]
) -> dict[str, Any]:
    """Delete one key of a domain. Removing the active key stops signing the domain's mail."""
    scope.domain_name(actor, fields.domain)
    removed = dkim.remove_key(ctx, actor, fields.domain, fields.selector)
    if removed.was_active:
        message = (
            f"The DKIM key {removed.selector} of {removed.domain} was removed; mail from "
            f"{removed.domain} is no longer signed."
        )
    else:
        message = f"The retired DKIM key {removed.selector} of {removed.domain} was removed."
    if not removed.reload.ok:
        message += " OpenDKIM was not updated on this host; see reload."
    return {
        "result": True,
        "msg": message,
        "domain": removed.domain,
        "selector": removed.selector,
        "was_active": removed.was_active,
        "reload": reload_json(removed.reload),
    }

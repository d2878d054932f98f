"""Quotas and limits: a mailbox's quota, a domain's limits (set by a superadmin)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mailctl.api.bodies import DomainLimits, QuotaSet
from mailctl.api.deps import ActorDep, ContextDep, parsed
from mailctl.api.fields import ID
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.api.routes.users import usage_json
from mailctl.domain.sizes import shown_size
from mailctl.services import quotas, scope
from mailctl.services.views import DomainLimits as LimitsView

router = APIRouter(tags=["quotas"], route_class=JSONRoute)


@dataclass(frozen=True)
class NewQuota:
    """The fields of set_user_quota: the mailbox (id or email), its quota, its count."""

    quota: str
    id: Annotated[str | None, ID] = None
    email: str | None = None
    messages: str | None = None


@dataclass(frozen=True)
class LimitsOf:
    """The fields of show_domain_limits."""

    domain: str


@dataclass(frozen=True)
class NewLimits:
    """The fields of set_domain_limits; a limit not given stays as it is."""

    domain: str
    max_mailboxes: str | None = None
    max_aliases: str | None = None
    max_quota: str | None = None


def limits_json(view: LimitsView) -> dict[str, Any]:
    return {
        "domain_id": view.domain_id,
        "domain": view.domain,
        "max_mailboxes": view.max_mailboxes,
        "max_aliases": view.max_aliases,
        "max_quota_bytes": view.max_quota_bytes,
        "mailboxes": view.mailboxes,
        "aliases": view.aliases,
        "quota_bytes": view.quota_bytes,
    }


@router.post("/user-quota", **answers(QuotaSet, 400, 401, 403, 404, 409, 413, 503))
def set_user_quota(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[NewQuota, Depends(parsed(NewQuota))]
) -> dict[str, Any]:
    """Set a mailbox's storage quota (bytes, or 500K, 10M, 2G; 0 or ``unlimited`` for
    none) and, with ``messages``, how many messages it may hold. Dovecot reads it at once."""
    user = quotas.set_user_quota(
        ctx,
        actor,
        user_id=fields.id,
        email=fields.email,
        quota=fields.quota,
        messages=fields.messages,
    )
    return {
        "result": True,
        "msg": f"The quota of {user.email} is {shown_size(user.quota_bytes)}.",
        "user": usage_json(user),
    }


@router.get("/domain-limits", **answers(DomainLimits, 400, 401, 404, 413, 503))
def show_domain_limits(
    ctx: ContextDep, _actor: ActorDep, fields: Annotated[LimitsOf, Depends(parsed(LimitsOf))]
) -> dict[str, Any]:
    """A domain's limits (null: unlimited) and what it has now."""
    scope.domain_name(_actor, fields.domain)
    limits = quotas.domain_limits(ctx, _actor, fields.domain)
    return {
        "result": True,
        "msg": f"The limits of {limits.domain}.",
        "limits": limits_json(limits),
    }


@router.post("/domain-limits", **answers(DomainLimits, 400, 401, 403, 404, 409, 413, 503))
def set_domain_limits(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[NewLimits, Depends(parsed(NewLimits))]
) -> dict[str, Any]:
    """Limit a domain's mailboxes, aliases and their quotas added up (``max_quota``: bytes
    or 10G; 0 or ``unlimited`` for none); checked when something is created. Superadmins
    only."""
    scope.require_superadmin(actor, "change a domain's limits")
    limits = quotas.set_domain_limits(
        ctx,
        actor,
        fields.domain,
        max_mailboxes=fields.max_mailboxes,
        max_aliases=fields.max_aliases,
        max_quota=fields.max_quota,
    )
    return {
        "result": True,
        "msg": f"The limits of {limits.domain} were changed.",
        "limits": limits_json(limits),
    }

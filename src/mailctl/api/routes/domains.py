"""Domains: list, create (optionally with the first mailbox), delete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from mailctl.api.bodies import DomainCreated, DomainList, Trashed
from mailctl.api.deps import ActorDep, ContextDep, parsed
from mailctl.api.openapi import answers
from mailctl.api.paging import ListPage, page_json
from mailctl.api.responses import JSONRoute, TaggedBody, answer, tagged
from mailctl.services import domains, scope
from mailctl.services.paging import Paged
from mailctl.services.views import DomainView

router = APIRouter(tags=["domains"], route_class=JSONRoute)


@dataclass(frozen=True)
class NewDomain:
    """The fields of create_domain: the name, and optionally its first mailbox."""

    domain: str
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class DomainToDelete:
    """The fields of delete_domain."""

    domain: str


def domain_json(view: DomainView) -> dict[str, Any]:
    return {"id": view.id, "name": view.name, "users_count": view.users_count}


@router.get("/domains", **answers(DomainList, 304, 400, 401, 413, 503))
def list_domains(
    request: Request,
    ctx: ContextDep,
    _actor: ActorDep,
    fields: Annotated[ListPage, Depends(parsed(ListPage))],
) -> Response:
    """Every domain with its number of mailboxes; a page of them with ``limit``.

    A domain admin, or a key bound to some domains, sees only those."""
    return answer(request, domains.domain_listing(ctx, fields.page(), _actor.scope, _listing))


def _listing(page: Paged[DomainView]) -> TaggedBody:
    return tagged(page_json("domains", page, domain_json))


@router.post(
    "/domains",
    **answers(DomainCreated, 400, 401, 409, 413, 503),
)
def create_domain(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[NewDomain, Depends(parsed(NewDomain))]
) -> dict[str, Any]:
    """Create a domain, and its first mailbox when username and password are given."""
    scope.require_superadmin(actor, "create domains")
    domain, user = domains.create_domain(
        ctx, actor, fields.domain, fields.username, fields.password
    )
    body: dict[str, Any] = {
        "result": True,
        "msg": f"The domain {domain.name} was created.",
        "domain": domain_json(domain),
    }
    if user is not None:
        body["user"] = {"id": user.id, "domain_id": user.domain_id, "email": user.email}
    return body


@router.delete("/domain", **answers(Trashed, 400, 401, 404, 413, 503))
def delete_domain(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[DomainToDelete, Depends(parsed(DomainToDelete))],
) -> dict[str, Any]:
    """Delete a domain; its mail moves to the trash, where it can be restored."""
    scope.require_superadmin(actor, "delete domains")
    trash = domains.delete_domain(ctx, actor, fields.domain)
    return {
        "result": True,
        "msg": f"The domain {trash.target} was deleted; its mail is in the trash.",
        "trash": trash.path,
        "trash_id": trash.id,
    }

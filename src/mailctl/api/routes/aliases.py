"""Aliases: list per domain, add, remove (the paths follow the mailbox routes' pattern)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mailctl.api.bodies import AliasCreated, AliasesRemoved, AliasList
from mailctl.api.deps import ActorDep, ContextDep, parsed
from mailctl.api.openapi import DomainIdPath, answers
from mailctl.api.responses import JSONRoute
from mailctl.services import aliases, scope
from mailctl.services.aliases import AliasView

router = APIRouter(tags=["aliases"], route_class=JSONRoute)


@dataclass(frozen=True)
class NewAlias:
    """The fields of add_alias."""

    source: str
    destination: str


@dataclass(frozen=True)
class AliasesToDelete:
    """The fields of delete_aliases: every alias of ``source``, or only the one to
    ``destination``."""

    source: str
    destination: str | None = None


def alias_json(view: AliasView) -> dict[str, Any]:
    return {
        "id": view.id,
        "domain_id": view.domain_id,
        "source": view.source,
        "destination": view.destination,
    }


@router.get("/aliases/{domain_id}", **answers(AliasList, 400, 401, 404, 503))
def list_aliases(ctx: ContextDep, _actor: ActorDep, domain_id: DomainIdPath) -> dict[str, Any]:
    """The aliases of the domain with this id."""
    scope.domain_id(_actor, domain_id)
    views = aliases.list_aliases(ctx, domain_id)
    return {"result": True, "aliases": [alias_json(a) for a in views]}


@router.post(
    "/alias/{domain_id}",
    **answers(AliasCreated, 400, 401, 404, 409, 413, 503),
)
def add_alias(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[NewAlias, Depends(parsed(NewAlias))],
    domain_id: DomainIdPath,
) -> dict[str, Any]:
    """Send mail for ``source`` (an address of the domain, or ``@domain`` for every address
    without a mailbox) to ``destination`` (addresses separated by commas, here or elsewhere).
    """
    scope.domain_id(actor, domain_id)
    view = aliases.add_alias(ctx, actor, domain_id, fields.source, fields.destination)
    return {
        "result": True,
        "msg": f"The alias {view.source} to {view.destination} was created.",
        "alias": alias_json(view),
    }


@router.delete(
    "/aliases",
    **answers(AliasesRemoved, 400, 401, 404, 413, 503),
)
def delete_aliases(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[AliasesToDelete, Depends(parsed(AliasesToDelete))],
) -> dict[str, Any]:
    """Remove the aliases of ``source``, or only its alias to ``destination``."""
    removed = aliases.delete_aliases(ctx, actor, fields.source, fields.destination)
    first = removed[0]
    if len(removed) == 1:
        message = f"The alias {first.source} to {first.destination} was removed."
    else:
        message = f"The {len(removed)} aliases of {first.source} were removed."
    return {
        "result": True,
        "msg": message,
        "aliases": [alias_json(a) for a in removed],
    }

"""The audit log: every change, who made it and when, newest first, a page at a time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mailctl.api.bodies import AuditList
from mailctl.api.deps import ActorDep, ContextDep, parsed
from mailctl.api.fields import Note
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.services import audit
from mailctl.services.paging import MAX_LIMIT

router = APIRouter(tags=["audit"], route_class=JSONRoute)

WHEN = "an ISO 8601 date-time (UTC unless it gives an offset) or Unix seconds"


@dataclass(frozen=True)
class AuditFields:
    """The fields of list_audit: filters, each optional, and the page."""

    admin: Annotated[str | None, Note("only the changes of this admin (its exact name)")] = None
    domain: Annotated[str | None, Note("only the changes of this domain")] = None
    action: Annotated[str | None, Note("only this action, such as create_user")] = None
    since: Annotated[str | None, Note(f"only changes at or after this moment: {WHEN}")] = None
    until: Annotated[str | None, Note(f"only changes at or before this moment: {WHEN}")] = None
    limit: Annotated[
        str | None,
        Note(f"at most this many entries, 1 to {MAX_LIMIT} ({audit.DEFAULT_LIMIT} if not given)"),
    ] = None
    after: Annotated[str | None, Note("only entries older than this id (next_after)")] = None


@router.get("/audit", **answers(AuditList, 400, 401, 404, 413, 503))
def list_audit(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[AuditFields, Depends(parsed(AuditFields))],
) -> dict[str, Any]:
    """The audit log, newest first, a page at a time (``next_after`` starts the next).

    A domain admin, or a key bound to some domains, reads only those domains' entries."""
    filters = audit.read_filters(
        fields.admin, fields.domain, fields.action, fields.since, fields.until
    )
    page = audit.read_audit_page(fields.limit, fields.after)
    found = audit.list_entries(ctx, actor, filters, page)
    return {
        "result": True,
        "entries": [entry.as_json() for entry in found.items],
        "next_after": found.next_after,
    }

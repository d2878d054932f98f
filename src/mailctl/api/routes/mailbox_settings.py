"""A mailbox's forwarding and auto-reply, set by an admin (the owner's own: ``/self``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mailctl.api.bodies import MailboxSettings, MailboxSettingsChanged
from mailctl.api.deps import ActorDep, ContextDep, parsed
from mailctl.api.fields import ID, Note
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.api.routes.selfservice import (
    AutoreplyFields,
    ForwardingFields,
    autoreply_message,
    enabled_flag,
    forwarding_message,
    settings_json,
)
from mailctl.services import mailbox_settings

router = APIRouter(tags=["users"], route_class=JSONRoute)


@dataclass(frozen=True)
class MailboxRef:
    """The mailbox, by ``id`` or by ``email`` (one of them)."""

    id: Annotated[str | None, ID, Note("the mailbox's id")] = None
    email: Annotated[str | None, Note("the mailbox's address")] = None


@dataclass(frozen=True)
class MailboxForwarding(ForwardingFields):
    """The mailbox, by ``id`` or ``email``, and where its mail goes."""

    id: Annotated[str | None, ID, Note("the mailbox's id")] = None
    email: Annotated[str | None, Note("the mailbox's address")] = None


@dataclass(frozen=True)
class MailboxAutoreply(AutoreplyFields):
    """The mailbox, by ``id`` or ``email``, and its auto-reply."""

    id: Annotated[str | None, ID, Note("the mailbox's id")] = None
    email: Annotated[str | None, Note("the mailbox's address")] = None


@router.get("/user-forwarding", **answers(MailboxSettings, 400, 401, 404, 413, 503))
def get_user_forwarding(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[MailboxRef, Depends(parsed(MailboxRef))]
) -> dict[str, Any]:
    """A mailbox's forwarding (and auto-reply): the same answer as ``GET /self``."""
    user_id = mailbox_settings.find_mailbox(ctx, actor, fields.id, fields.email)
    return settings_json(mailbox_settings.get_settings(ctx, user_id))


@router.post("/user-forwarding", **answers(MailboxSettingsChanged, 400, 401, 404, 413, 503))
def set_user_forwarding(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[MailboxForwarding, Depends(parsed(MailboxForwarding))],
) -> dict[str, Any]:
    """Forward a mailbox's mail (``keep_copy``: and keep it there too); none: off."""
    user_id = mailbox_settings.find_mailbox(ctx, actor, fields.id, fields.email)
    view = mailbox_settings.set_forwarding(
        ctx, actor, user_id, fields.destinations, fields.keep_copy
    )
    return {**settings_json(view), "msg": forwarding_message(view)}


@router.get("/user-autoreply", **answers(MailboxSettings, 400, 401, 404, 413, 503))
def get_user_autoreply(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[MailboxRef, Depends(parsed(MailboxRef))]
) -> dict[str, Any]:
    """A mailbox's auto-reply (and forwarding): the same answer as ``GET /self``."""
    user_id = mailbox_settings.find_mailbox(ctx, actor, fields.id, fields.email)
    return settings_json(mailbox_settings.get_settings(ctx, user_id))


@router.post("/user-autoreply", **answers(MailboxSettingsChanged, 400, 401, 404, 413, 503))
def set_user_autoreply(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[MailboxAutoreply, Depends(parsed(MailboxAutoreply))],
) -> dict[str, Any]:
    """Turn a mailbox's auto-reply on (subject, body, optional first and last day) or off."""
    user_id = mailbox_settings.find_mailbox(ctx, actor, fields.id, fields.email)
    view = mailbox_settings.set_autoreply(
        ctx,
        actor,
        user_id,
        enabled=enabled_flag(fields.enabled),
        subject=fields.subject,
        body=fields.body,
        start=fields.start,
        end=fields.end,
    )
    return {**settings_json(view), "msg": autoreply_message(view)}

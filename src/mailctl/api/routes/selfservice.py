"""``/self``: a mailbox owner logs in with its address and password, and manages its own
password, forwarding and auto-reply. Its token is refused everywhere else, and an admin's
token is refused here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mailctl.api.bodies import (
    Done,
    MailboxPasswordChanged,
    MailboxSettings,
    MailboxSettingsChanged,
    MailboxToken,
)
from mailctl.api.deps import ClientAddressDep, ContextDep, CurrentMailboxDep, parsed
from mailctl.api.fields import FLAG_WORDS, Note
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.errors import InvalidInputError
from mailctl.services import mailbox_auth, mailbox_settings
from mailctl.services.mailbox_settings import MailboxSettingsView

router = APIRouter(tags=["self-service"], route_class=JSONRoute)


@dataclass(frozen=True)
class MailboxCredentials:
    """The fields of create_mailbox_token; a missing one is a failed login (401)."""

    email: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class OwnPassword:
    """The fields of change_own_password."""

    password: Annotated[str, Note("the current password")]
    new_password: str


@dataclass(frozen=True)
class ForwardingFields:
    """The fields that set forwarding; no destinations turn it off."""

    destinations: Annotated[
        str | None, Note("addresses separated by commas or spaces; empty: forwarding off")
    ] = None
    keep_copy: Annotated[bool, Note("keep a copy in this mailbox too")] = False


@dataclass(frozen=True)
class AutoreplyFields:
    """The fields that set the auto-reply."""

    enabled: Annotated[
        str | None, Note("true (the default): reply; false: stop replying, keep the texts")
    ] = None
    subject: Annotated[str | None, Note("one line, 200 characters at most")] = None
    body: Annotated[str | None, Note("the reply's text, 10000 characters at most")] = None
    start: Annotated[str | None, Note("first day of replies, ISO 8601 (2026-12-24), UTC")] = None
    end: Annotated[str | None, Note("last day of replies, ISO 8601, UTC")] = None


def enabled_flag(value: str | None) -> bool:
    """The ``enabled`` field: absent means on, as setting an auto-reply is asking for one."""
    if value is None or not value.strip():
        return True
    word = value.strip().lower()
    if word not in FLAG_WORDS:
        raise InvalidInputError(
            "The field 'enabled' must be true or false (or 1/0, yes/no, on/off)."
        )
    return FLAG_WORDS.index(word) % 2 == 0


def settings_json(view: MailboxSettingsView) -> dict[str, Any]:
    """A mailbox's settings as the API shows them."""
    forward, reply = view.forwarding, view.autoreply
    return {
        "result": True,
        "user": {"id": view.id, "domain_id": view.domain_id, "email": view.email},
        "forwarding": {
            "enabled": forward.enabled,
            "destinations": list(forward.destinations),
            "keep_copy": forward.keep_copy,
        },
        "autoreply": {
            "enabled": reply.enabled,
            "subject": reply.subject,
            "body": reply.body,
            "start": reply.starts_on.isoformat() if reply.starts_on else None,
            "end": reply.ends_on.isoformat() if reply.ends_on else None,
        },
    }


def forwarding_message(view: MailboxSettingsView) -> str:
    forward = view.forwarding
    if not forward.enabled:
        return f"Mail for {view.email} is no longer forwarded."
    copy = "; a copy stays" if forward.keep_copy else ""
    return f"Mail for {view.email} is forwarded to {', '.join(forward.destinations)}{copy}."


def autoreply_message(view: MailboxSettingsView) -> str:
    state = "on" if view.autoreply.enabled else "off"
    return f"The auto-reply of {view.email} is {state}."


@router.post("/self/auth", **answers(MailboxToken, 400, 401, 413, 429, 503))
def create_mailbox_token(
    ctx: ContextDep,
    fields: Annotated[MailboxCredentials, Depends(parsed(MailboxCredentials))],
    address: ClientAddressDep,
) -> dict[str, Any]:
    """Log in as a mailbox owner, with the address and the password IMAP takes; the token
    is accepted by the /self operations only."""
    token = mailbox_auth.login(ctx, fields.email, fields.password, address)
    return {"result": True, "token": token}


@router.get("/self", **answers(MailboxSettings, 401, 503))
def get_self(ctx: ContextDep, mailbox: CurrentMailboxDep) -> dict[str, Any]:
    """Your mailbox, its forwarding and its auto-reply."""
    return settings_json(mailbox_settings.get_settings(ctx, mailbox.id))


@router.post(
    "/self/password",
    **answers(
        MailboxPasswordChanged,
        400,
        401,
        409,
        413,
        429,
        503,
        description="Changed; every earlier token is refused, use the new one.",
    ),
)
def change_own_password(
    ctx: ContextDep,
    mailbox: CurrentMailboxDep,
    fields: Annotated[OwnPassword, Depends(parsed(OwnPassword))],
    address: ClientAddressDep,
) -> dict[str, Any]:
    """Change your mailbox's password (``password`` the current one); IMAP and SMTP take
    the new one at once."""
    changed = mailbox_auth.change_password(
        ctx, mailbox, fields.password, fields.new_password, address
    )
    return {
        "result": True,
        "msg": f"The password of {mailbox.email} was changed; "
        f"{changed.revoked} earlier token(s) no longer work.",
        "token": changed.token,
        "revoked": changed.revoked,
    }


@router.post("/self/forwarding", **answers(MailboxSettingsChanged, 400, 401, 413, 503))
def set_own_forwarding(
    ctx: ContextDep,
    mailbox: CurrentMailboxDep,
    fields: Annotated[ForwardingFields, Depends(parsed(ForwardingFields))],
    address: ClientAddressDep,
) -> dict[str, Any]:
    """Forward your mail (``keep_copy``: and keep it here too); no destinations: off."""
    view = mailbox_settings.set_forwarding(
        ctx, mailbox.actor(address), mailbox.id, fields.destinations, fields.keep_copy
    )
    return {**settings_json(view), "msg": forwarding_message(view)}


@router.post("/self/autoreply", **answers(MailboxSettingsChanged, 400, 401, 413, 503))
def set_own_autoreply(
    ctx: ContextDep,
    mailbox: CurrentMailboxDep,
    fields: Annotated[AutoreplyFields, Depends(parsed(AutoreplyFields))],
    address: ClientAddressDep,
) -> dict[str, Any]:
    """Answer mail automatically, once a day per sender, between ``start`` and ``end``."""
    view = mailbox_settings.set_autoreply(
        ctx,
        mailbox.actor(address),
        mailbox.id,
        enabled=enabled_flag(fields.enabled),
        subject=fields.subject,
        body=fields.body,
        start=fields.start,
        end=fields.end,
    )
    return {**settings_json(view), "msg": autoreply_message(view)}


@router.post("/self/logout", **answers(Done, 401, 503, description="This token is revoked."))
def logout_mailbox(ctx: ContextDep, mailbox: CurrentMailboxDep) -> dict[str, Any]:
    """Log out: the token this request carries is refused from now on."""
    mailbox_auth.logout(ctx, mailbox)
    return {"result": True, "msg": "Logged out; this token no longer works."}

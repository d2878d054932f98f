"""Mailboxes: list per domain, create, change password, delete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from mailctl.api.bodies import UserChanged, UserList, UsersCreated, UserTrashed
from mailctl.api.deps import ActorDep, ContextDep, parsed
from mailctl.api.fields import ID, Json, Note
from mailctl.api.openapi import DomainIdPath, answers
from mailctl.api.paging import ListPage, page_json
from mailctl.api.responses import JSONRoute, answer, tagged
from mailctl.config import Settings
from mailctl.errors import InvalidEntryError, InvalidInputError
from mailctl.services import mailboxes, scope
from mailctl.services.views import UserView

router = APIRouter(tags=["users"], route_class=JSONRoute)


@dataclass(frozen=True)
class NewUser:
    """The fields of create_user: the address, and a password or an existing hash."""

    email: str
    password: str | None = None
    password_hash: str | None = None
    quota: str | None = None


_ENTRY_KEYS = ("email", "password", "password_hash", "quota")
# What one batch entry may take of a request body at most, on average: an address, and a
# long password or hash with JSON's escapes.
BATCH_ENTRY_BYTES = 1024
_USERS_SCHEMA: dict[str, Any] = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "properties": {key: {"type": "string"} for key in _ENTRY_KEYS},
        "required": ["email"],
        "additionalProperties": False,
    },
}


@dataclass(frozen=True)
class NewUsers:
    """The fields of create_users: the mailboxes, as a JSON list."""

    users: Annotated[
        object,
        Json(_USERS_SCHEMA),
        Note(
            'a JSON list of {"email", "password"} or {"email", "password_hash"} objects, '
            'each with an optional "quota"'
        ),
    ]


def batch_body_bytes(settings: Settings) -> int:
    """The request body a batch create may send: room for ``max_batch_users`` entries."""
    return max(settings.max_field_bytes, settings.max_batch_users * BATCH_ENTRY_BYTES)


def batch_entries(value: object) -> list[mailboxes.NewMailbox]:
    """The entries of a ``users`` field, or InvalidInputError for a value of another shape."""
    if not isinstance(value, list):
        raise InvalidInputError(
            "The field 'users' must be a JSON list of objects, each with an email and a "
            "password or a password_hash."
        )
    entries = []
    for index, item in enumerate(value, start=1):
        if not isinstance(item, dict):
            raise InvalidInputError(f"Entry {index} of 'users' must be a JSON object.")
        email = item.get("email")
        shown = mailboxes.shown_email(email) if isinstance(email, str) else "no address"
        for key, text in item.items():
            if key not in _ENTRY_KEYS:
                raise InvalidEntryError(
                    index, shown, f"Unknown field {key[:40]!r}; give {', '.join(_ENTRY_KEYS)}."
                )
            if text is not None and not isinstance(text, str):
                raise InvalidEntryError(index, shown, f"The field '{key}' must be text.")
        entries.append(
            mailboxes.NewMailbox(
                email or "", item.get("password"), item.get("password_hash"), item.get("quota")
            )
        )
    return entries


@dataclass(frozen=True)
class NewPassword:
    """The fields of change_password."""

    id: Annotated[str, ID]
    password: str
    domain_id: Annotated[str, ID]


@dataclass(frozen=True)
class UserToDelete:
    """The fields of delete_user."""

    email: str


def user_json(view: UserView) -> dict[str, Any]:
    return {"id": view.id, "domain_id": view.domain_id, "email": view.email}


def usage_json(view: UserView) -> dict[str, Any]:
    """A mailbox with its quota (None: unlimited) and what Dovecot last counted in it."""
    return {
        "id": view.id,
        "domain_id": view.domain_id,
        "email": view.email,
        "quota_bytes": view.quota_bytes,
        "quota_messages": view.quota_messages,
        "used_bytes": view.used_bytes,
        "used_messages": view.used_messages,
    }


@router.get("/users/{domain_id}", **answers(UserList, 304, 400, 401, 404, 413, 503))
def list_users(
    request: Request,
    ctx: ContextDep,
    _actor: ActorDep,
    domain_id: DomainIdPath,
    fields: Annotated[ListPage, Depends(parsed(ListPage))],
) -> Response:
    """The mailboxes of the domain with this id; a page of them with ``limit``."""
    scope.domain_id(_actor, domain_id)
    # Not kept between requests: the usage is Dovecot's to write, past the counter.
    page = mailboxes.page_users(ctx, domain_id, fields.page())
    return answer(request, tagged(page_json("users", page, usage_json)))


@router.post(
    "/user/{domain_id}",
    **answers(UserChanged, 400, 401, 404, 409, 413, 503),
)
@router.post(
    "/users/{domain_id}",
    deprecated=True,
    summary="Create User (the old service's path; use /user/{domain_id})",
    **answers(UserChanged, 400, 401, 404, 409, 413, 503),
)
def create_user(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[NewUser, Depends(parsed(NewUser))],
    domain_id: DomainIdPath,
) -> dict[str, Any]:
    """Create a mailbox (``/users/:domain_id`` is accepted too, as the old service did)."""
    scope.domain_id(actor, domain_id)
    user = mailboxes.create_user(
        ctx, actor, domain_id, fields.email, fields.password, fields.password_hash, fields.quota
    )
    return {
        "result": True,
        "msg": f"The mailbox {user.email} was created.",
        "user": user_json(user),
    }


@router.post("/user/{domain_id}/batch", **answers(UsersCreated, 400, 401, 404, 409, 413, 503))
def create_users(
    ctx: ContextDep,
    actor: ActorDep,
    fields: Annotated[NewUsers, Depends(parsed(NewUsers, batch_body_bytes))],
    domain_id: DomainIdPath,
) -> dict[str, Any]:
    """Create many mailboxes of one domain in one transaction: all of them, or none."""
    scope.domain_id(actor, domain_id)
    users = mailboxes.create_users(ctx, actor, domain_id, batch_entries(fields.users))
    return {
        "result": True,
        "msg": f"{len(users)} mailbox{'es were' if len(users) != 1 else ' was'} created.",
        "users": [user_json(u) for u in users],
    }


@router.post(
    "/user-change-password",
    **answers(UserChanged, 400, 401, 404, 413, 503),
)
def change_password(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[NewPassword, Depends(parsed(NewPassword))]
) -> dict[str, Any]:
    """Change a mailbox password; the response comes after the change is stored."""
    scope.domain_id(actor, fields.domain_id)
    user = mailboxes.change_password(ctx, actor, fields.id, fields.password, fields.domain_id)
    return {
        "result": True,
        "msg": f"The password of {user.email} was changed.",
        "user": user_json(user),
    }


@router.delete("/users", **answers(UserTrashed, 400, 401, 404, 413, 503))
def delete_user(
    ctx: ContextDep, actor: ActorDep, fields: Annotated[UserToDelete, Depends(parsed(UserToDelete))]
) -> dict[str, Any]:
    """Delete a mailbox; its mail moves to the trash, where it can be restored."""
    trash = mailboxes.delete_user(ctx, actor, fields.email)
    message = f"The mailbox {trash.target} was deleted; its mail is in the trash."
    if trash.aliases:
        message += f" Its aliases went with it: {', '.join(trash.aliases)}."
    return {
        "result": True,
        "msg": message,
        "trash": trash.path,
        "trash_id": trash.id,
        "aliases_removed": list(trash.aliases),
    }

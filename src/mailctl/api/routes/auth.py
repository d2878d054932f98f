"""``/auth``: log in for a token (with a two-factor code if enrolled); change the password,
log out, list and revoke tokens.

The account's own methods hang below ``/auth``, the path that hands out tokens, and take
their fields from anywhere (form, urlencoded, JSON, query string) like every other method;
a token is named by its id (``jti``) in a field, as ``DELETE /users`` names a mailbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mailctl.api.bodies import (
    Done,
    PasswordChanged,
    SecondFactorNeeded,
    Token,
    TokenList,
    TokensRevoked,
)
from mailctl.api.deps import (
    ClientAddressDep,
    ContextDep,
    CurrentAdminDep,
    UserAgentDep,
    parsed,
)
from mailctl.api.fields import Note
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.errors import InvalidInputError
from mailctl.services import accounts, api_keys, auth, two_factor
from mailctl.services.context import Actor

router = APIRouter(tags=["auth"], route_class=JSONRoute)


@dataclass(frozen=True)
class Credentials:
    """The fields of create_token; a missing one is a failed login (401), like a wrong one."""

    username: str | None = None
    password: str | None = None
    code: Annotated[
        str | None, Note("the two-factor code (6 digits) or a recovery code, if enrolled")
    ] = None


@dataclass(frozen=True)
class PasswordChange:
    """The fields of change_password."""

    password: Annotated[str, Note("the current password")]
    new_password: str


@dataclass(frozen=True)
class TokensToRevoke:
    """The fields of revoke_tokens: one of ``id`` and ``all``."""

    id: Annotated[str | None, Note("a token id from GET /auth/tokens")] = None
    all: bool = False


@router.post(
    "/auth",
    **answers(Token, 400, (401, SecondFactorNeeded), 413, 429, 503),
)
def create_token(
    ctx: ContextDep,
    fields: Annotated[Credentials, Depends(parsed(Credentials))],
    address: ClientAddressDep,
    agent: UserAgentDep,
) -> dict[str, Any]:
    """Log in; the token goes in the ``Auth-token`` header of every other call.

    An admin with two-factor login sends ``code`` too; without it the answer is a 401
    with ``"totp_required": true``.
    """
    done = auth.login_with_code(ctx, fields.username, fields.password, address, agent, fields.code)
    if done.enrol_only:
        return {
            "result": True,
            "token": done.token,
            "totp_enrolment_required": True,
            "msg": two_factor.ENROL_FIRST,
        }
    return {"result": True, "token": done.token}


@router.post(
    "/auth/password",
    **answers(
        PasswordChanged,
        400,
        401,
        409,
        413,
        429,
        503,
        description="Changed; every earlier token is refused, use the new one.",
    ),
)
def change_password(
    ctx: ContextDep,
    admin: CurrentAdminDep,
    fields: Annotated[PasswordChange, Depends(parsed(PasswordChange))],
    address: ClientAddressDep,
    agent: UserAgentDep,
) -> dict[str, Any]:
    """Change your own password (``password`` is the current one, ``new_password`` the new).

    Tokens issued before, this one included, are refused afterwards; the answer carries
    a new token.
    """
    api_keys.refuse_for_keys(admin, "change a password")
    changed = accounts.change_password(
        ctx, admin, fields.password, fields.new_password, address, agent
    )
    return {
        "result": True,
        "msg": f"The password of {changed.username} was changed; "
        f"{changed.revoked} earlier token(s) no longer work.",
        "token": changed.token,
        "revoked": changed.revoked,
    }


@router.post(
    "/auth/logout",
    **answers(Done, 401, 404, 503, description="This token is revoked."),
)
def logout(ctx: ContextDep, admin: CurrentAdminDep, address: ClientAddressDep) -> dict[str, Any]:
    """Log out: the token this request carries is refused from now on."""
    api_keys.refuse_for_keys(admin, "log out")
    accounts.logout(ctx, admin, address)
    return {"result": True, "msg": "Logged out; this token no longer works."}


@router.get(
    "/auth/tokens",
    **answers(TokenList, 401, 503, description="Your tokens that are accepted now, oldest first."),
)
def list_tokens(ctx: ContextDep, admin: CurrentAdminDep) -> dict[str, Any]:
    """Your active tokens: id, issued, expires, and the address and agent that logged in."""
    api_keys.refuse_for_keys(admin, "list login tokens")
    return {
        "result": True,
        "tokens": [
            {
                "id": view.id,
                "issued": view.issued.isoformat(),
                "expires": view.expires.isoformat(),
                "address": view.client_address,
                "agent": view.user_agent,
                "current": view.id == admin.token_id,
            }
            for view in accounts.list_tokens(ctx, admin.username)
        ],
    }


@router.delete(
    "/auth/tokens",
    **answers(TokensRevoked, 400, 401, 404, 413, 503, description="Revoked."),
)
def revoke_tokens(
    ctx: ContextDep,
    admin: CurrentAdminDep,
    fields: Annotated[TokensToRevoke, Depends(parsed(TokensToRevoke))],
    address: ClientAddressDep,
) -> dict[str, Any]:
    """Revoke one of your tokens (``id``), or all of them (``all=true``, this one included)."""
    api_keys.refuse_for_keys(admin, "revoke login tokens")
    every = fields.all
    token_id = (fields.id or "").strip()
    if every == bool(token_id):
        raise InvalidInputError(
            "Give either 'id' (a token id from GET /auth/tokens) or 'all=true'."
        )
    actor = Actor(admin.username, address)
    if every:
        count = accounts.revoke_all(ctx, actor, admin.username)
        return {
            "result": True,
            "msg": f"{count} token(s) revoked, this one included.",
            "revoked": count,
        }
    accounts.revoke_token(ctx, actor, admin.username, token_id)
    return {"result": True, "msg": f"The token {token_id} was revoked.", "revoked": 1}

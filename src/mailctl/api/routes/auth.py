"""``POST /auth``: trade an admin's username and password for a token."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mailctl.api.bodies import Token
from mailctl.api.deps import ClientAddressDep, ContextDep, FieldsDep
from mailctl.api.openapi import answers, form
from mailctl.services import auth

router = APIRouter(tags=["auth"])


@router.post(
    "/auth",
    openapi_extra=form("username", "password"),
    **answers(Token, 400, 401, 413, 429, 503),
)
def create_token(ctx: ContextDep, fields: FieldsDep, address: ClientAddressDep) -> dict[str, Any]:
    """Log in; the token goes in the ``Auth-token`` header of every other call."""
    token = auth.login(ctx, fields.get("username"), fields.get("password"), address)
    return {"result": True, "token": token}

"""``/auth/totp``: an admin's two-factor login (TOTP); ``/admin/totp/reset`` and
``/auth/totp/policy`` for superadmins. Each needs a login token: an API key is refused."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mailctl.api.bodies import Done, TotpConfirmed, TotpEnrolment, TotpPolicy, TotpStatus
from mailctl.api.deps import ClientAddressDep, ContextDep, CurrentAdminDep, parsed
from mailctl.api.fields import Note
from mailctl.api.openapi import answers
from mailctl.api.responses import JSONRoute
from mailctl.services import api_keys, two_factor
from mailctl.services.auth import AdminIdentity
from mailctl.services.context import Actor

router = APIRouter(tags=["two-factor"], route_class=JSONRoute)


@dataclass(frozen=True)
class ConfirmCode:
    """The field of confirm_totp."""

    code: Annotated[str, Note("the 6-digit code the authenticator app shows")]


@dataclass(frozen=True)
class TurnOff:
    """The fields of disable_totp: one of them proves it is you."""

    password: Annotated[str | None, Note("your password")] = None
    code: Annotated[str | None, Note("a current code, or a recovery code")] = None


@dataclass(frozen=True)
class ResetFor:
    """The field of reset_totp."""

    username: Annotated[str, Note("the admin whose second factor is forgotten")]


@dataclass(frozen=True)
class Policy:
    """The field of set_totp_policy."""

    required: Annotated[str, Note("true or false")]


def _actor(admin: AdminIdentity, address: str | None, what: str) -> Actor:
    api_keys.refuse_for_keys(admin, what)
    return Actor(admin.username, address, admin.scope)


@router.get("/auth/totp", **answers(TotpStatus, 401, 503))
def totp_status(ctx: ContextDep, admin: CurrentAdminDep) -> dict[str, Any]:
    """Your two-factor state: enrolled, confirmed, recovery codes left, and the policy."""
    api_keys.refuse_for_keys(admin, "see a two-factor login")
    state = two_factor.state(ctx, admin.username)
    return {
        "result": True,
        "username": state.username,
        "enrolled": state.enrolled,
        "confirmed": state.confirmed,
        "recovery_codes_left": state.recovery_codes_left,
        "required": state.required,
    }


@router.post("/auth/totp", **answers(TotpEnrolment, 401, 404, 409, 503))
def start_totp(
    ctx: ContextDep, admin: CurrentAdminDep, address: ClientAddressDep
) -> dict[str, Any]:
    """Start enrolling: a new secret as text, ``otpauth://`` URI and QR code (SVG, PNG).

    Shown this once. Nothing changes at login until POST /auth/totp/confirm.
    """
    actor = _actor(admin, address, "enrol a second factor")
    enrolment = two_factor.start_enrolment(ctx, actor, admin.username)
    return {
        "result": True,
        "msg": "Scan the QR code (or type the secret) into an authenticator app, then "
        "confirm with its code at POST /auth/totp/confirm.",
        "secret": enrolment.secret,
        "uri": enrolment.uri,
        "qr_svg": enrolment.qr_svg(),
        "qr_png": enrolment.qr_png(),
    }


@router.post("/auth/totp/confirm", **answers(TotpConfirmed, 400, 401, 404, 409, 413, 503))
def confirm_totp(
    ctx: ContextDep,
    admin: CurrentAdminDep,
    fields: Annotated[ConfirmCode, Depends(parsed(ConfirmCode))],
    address: ClientAddressDep,
) -> dict[str, Any]:
    """Turn two-factor login on with a first code; answers 10 recovery codes, shown once."""
    actor = _actor(admin, address, "enrol a second factor")
    name, codes = two_factor.confirm_enrolment(ctx, actor, admin.username, fields.code)
    return {
        "result": True,
        "msg": f"Two-factor login is on for {name}: log in with the field 'code' from now on. "
        "Keep the recovery codes somewhere safe; each works once, instead of a code.",
        "recovery_codes": codes,
    }


@router.delete("/auth/totp", **answers(Done, 400, 401, 404, 409, 413, 429, 503))
def disable_totp(
    ctx: ContextDep,
    admin: CurrentAdminDep,
    fields: Annotated[TurnOff, Depends(parsed(TurnOff))],
    address: ClientAddressDep,
) -> dict[str, Any]:
    """Turn your two-factor login off, with your ``password`` or a current ``code``."""
    actor = _actor(admin, address, "turn a second factor off")
    two_factor.turn_off(ctx, actor, admin.id, fields.password, fields.code)
    return {"result": True, "msg": f"Two-factor login is off for {admin.username}."}


@router.post("/admin/totp/reset", **answers(Done, 400, 401, 404, 413, 503))
def reset_totp(
    ctx: ContextDep,
    admin: CurrentAdminDep,
    fields: Annotated[ResetFor, Depends(parsed(ResetFor))],
    address: ClientAddressDep,
) -> dict[str, Any]:
    """Forget an admin's second factor (a superadmin), e.g. when its phone is lost."""
    actor = _actor(admin, address, "reset a second factor")
    had = two_factor.remove(ctx, actor, fields.username)
    name = fields.username.strip()
    message = (
        f"The two-factor login of {name} is reset: it logs in with its password, and "
        "enrols again where the server requires it."
        if had
        else f"{name} had no two-factor login."
    )
    return {"result": True, "msg": message}


@router.post("/auth/totp/policy", **answers(TotpPolicy, 400, 401, 413, 503))
def set_totp_policy(
    ctx: ContextDep,
    admin: CurrentAdminDep,
    fields: Annotated[Policy, Depends(parsed(Policy))],
    address: ClientAddressDep,
) -> dict[str, Any]:
    """Require two-factor login of every admin, or not (a superadmin).

    An admin not enrolled yet still logs in with its password, for a token that may only
    enrol (``totp_enrolment_required`` in the answer of POST /auth).
    """
    actor = _actor(admin, address, "change the two-factor policy")
    required = two_factor.parse_switch(fields.required, "required")
    missing = two_factor.set_required(ctx, actor, required)
    if not required:
        message = "Two-factor login is no longer required."
    elif missing:
        message = (
            f"Two-factor login is required; {len(missing)} admin(s) have not enrolled yet "
            "and may only enrol at their next login."
        )
    else:
        message = "Two-factor login is required; every admin has enrolled."
    return {"result": True, "msg": message, "required": required, "not_enrolled": missing}

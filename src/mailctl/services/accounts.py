"""Admin account upkeep: password changes, logout, the list of active tokens, revocation.

A password change and "revoke all" raise the admin's token generation, which refuses
every token issued before in one UPDATE; logout and revoking one token mark its row.
Tokens are recorded by id (``jti``) only: the token itself is never stored or shown.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from mailctl.domain import passwords
from mailctl.errors import AuthError, ConflictError, InvalidInputError, NotFoundError
from mailctl.services import auth
from mailctl.services.context import Actor, Context

WRONG_CURRENT_PASSWORD = "The current password is not correct."  # noqa: S105 - a message


@dataclass(frozen=True)
class TokenView:
    """An active token as an admin may see it: never the token itself."""

    id: str
    admin: str
    issued: datetime
    expires: datetime
    client_address: str | None
    user_agent: str | None


@dataclass(frozen=True)
class PasswordChanged:
    """A changed admin password: how many tokens it revoked, and a fresh token if asked."""

    username: str
    revoked: int
    token: str | None


def _hash_new(ctx: Context, new_password: object) -> str:
    plain = passwords.check_new_password(new_password, ctx.settings.min_password_length)
    return ctx.passwords.hash(plain)


def change_password(
    ctx: Context,
    identity: auth.AdminIdentity,
    current_password: str,
    new_password: str,
    client_address: str | None,
    user_agent: str | None = None,
) -> PasswordChanged:
    """The admin changes its own password, giving the current one; returns a new token.

    The current password is checked under the login throttle (a wrong one counts as a
    failed login of that admin from that address). Every token issued before, the
    calling one included, is refused afterwards.
    """
    if not current_password:
        raise InvalidInputError("The current password is required.")
    if not new_password:
        raise InvalidInputError("A new password is required.")
    if new_password == current_password:
        raise InvalidInputError("The new password is the same as the current one.")
    passwords.check_new_password(new_password, ctx.settings.min_password_length)
    attempt = ctx.throttle.begin_attempt(client_address, identity.username)
    with ctx.uow() as uow:
        admin = uow.admins.get(identity.id)
        if admin is None:
            raise AuthError("The admin this token was issued to no longer exists.")
        stored = admin.password
    if not ctx.passwords.verify(current_password, stored):
        raise AuthError(WRONG_CURRENT_PASSWORD)
    ctx.throttle.attempt_succeeded(attempt)
    hashed = _hash_new(ctx, new_password)
    revoked = _store_password(
        ctx,
        Actor(identity.username, client_address),
        identity.id,
        identity.username,
        hashed,
        replacing=stored,
    )
    token = auth.issue_token(
        ctx,
        auth.AdminIdentity(identity.id, identity.username),
        client_address=client_address,
        user_agent=user_agent,
    )
    return PasswordChanged(identity.username, revoked, token)


def set_password(
    ctx: Context, actor: Actor, username: str, new_password: object
) -> PasswordChanged:
    """Set an admin's password on the host (``mailctl admin passwd``), without the old one."""
    hashed = _hash_new(ctx, new_password)
    with ctx.uow() as uow:
        admin = uow.admins.by_username(username)
        if admin is None:
            raise NotFoundError(f"There is no admin {username}.")
        admin_id = admin.id
    revoked = _store_password(ctx, actor, admin_id, username, hashed, replacing=None)
    return PasswordChanged(username, revoked, None)


def _store_password(
    ctx: Context,
    actor: Actor,
    admin_id: int,
    username: str,
    hashed: str,
    *,
    replacing: str | None,
) -> int:
    now = time.time()
    with ctx.uow() as uow:
        if not uow.admin_tokens.raise_generation(admin_id, hashed, replacing=replacing):
            if replacing is None:
                raise NotFoundError(f"There is no admin {username}.")
            raise ConflictError(
                "The password was changed by another request meanwhile; log in and try again."
            )
        revoked = uow.admin_tokens.revoke_all(admin_id, now, "password")
        uow.admin_tokens.prune(now)
        uow.audit.record(actor, "change_admin_password", username, f"{revoked} token(s) revoked")
        uow.commit()
    ctx.tokens.revoked()
    return revoked


def logout(ctx: Context, identity: auth.AdminIdentity, client_address: str | None) -> None:
    """Revoke the token the request came with."""
    if identity.token_id is None:
        raise InvalidInputError("This request carries no token to log out.")
    actor = Actor(identity.username, client_address)
    _revoke_one(ctx, actor, identity.username, identity.token_id, "logout")


def _admin_id(ctx: Context, username: str) -> tuple[int, int]:
    with ctx.uow() as uow:
        admin = uow.admins.by_username(username)
        if admin is None:
            raise NotFoundError(f"There is no admin {username}.")
        return admin.id, admin.token_generation


def list_tokens(ctx: Context, username: str) -> list[TokenView]:
    """The admin's tokens that are accepted now, oldest first."""
    admin_id, generation = _admin_id(ctx, username)
    with ctx.uow() as uow:
        rows = uow.admin_tokens.active(admin_id, generation, time.time())
        return [
            TokenView(
                id=row.jti,
                admin=username,
                issued=datetime.fromtimestamp(row.issued_at, UTC),
                expires=datetime.fromtimestamp(row.expires_at, UTC),
                client_address=row.client_address,
                user_agent=row.user_agent,
            )
            for row in rows
        ]


def revoke_token(ctx: Context, actor: Actor, username: str, token_id: str) -> None:
    """Revoke one active token of the admin by its id; NotFoundError if it has none such."""
    if not token_id.strip():
        raise InvalidInputError("A token id is required.")
    _revoke_one(ctx, actor, username, token_id.strip(), "revoked")


def _revoke_one(ctx: Context, actor: Actor, username: str, token_id: str, reason: str) -> None:
    admin_id, generation = _admin_id(ctx, username)
    now = time.time()
    with ctx.uow() as uow:
        row = uow.admin_tokens.get(token_id[:64])
        if (
            row is None
            or row.admin_id != admin_id
            or row.generation != generation
            or row.revoked_at is not None
            or row.expires_at <= now
        ):
            raise NotFoundError(f"There is no active token with id {token_id[:64]}.")
        row.revoked_at = now
        row.revoked_reason = reason
        uow.audit.record(actor, "logout" if reason == "logout" else "revoke_token", token_id[:64])
        uow.commit()
    ctx.tokens.revoked()


def revoke_all(ctx: Context, actor: Actor, username: str) -> int:
    """Revoke every token of the admin, those being issued at this moment included."""
    admin_id, _generation = _admin_id(ctx, username)
    now = time.time()
    with ctx.uow() as uow:
        if not uow.admin_tokens.raise_generation(admin_id):
            raise NotFoundError(f"There is no admin {username}.")
        revoked = uow.admin_tokens.revoke_all(admin_id, now, "revoked")
        uow.admin_tokens.prune(now)
        uow.audit.record(actor, "revoke_tokens", username, f"{revoked} token(s) revoked")
        uow.commit()
    ctx.tokens.revoked()
    return revoked

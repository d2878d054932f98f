"""Admin accounts, login with throttling, and the JWT tokens the API accepts."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

from mailctl.errors import (
    AuthError,
    ConflictError,
    InvalidInputError,
    NotFoundError,
)
from mailctl.services import throttle
from mailctl.services.context import Actor, Context

JWT_ALGORITHM = "HS256"
JWT_SECRET_NAME = "jwt_secret"  # noqa: S105 - the row name, not a secret
BAD_CREDENTIALS = "Username/password is not correct"
# Verified when the username is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH_SOURCE = "mailctl-no-such-admin"


@dataclass(frozen=True)
class AdminIdentity:
    """The admin a valid token speaks for."""

    id: int
    username: str


@dataclass(frozen=True)
class InitResult:
    """What ``mailctl init`` did."""

    admin_username: str
    admin_created: bool
    generated_password: str | None
    secret_created: bool


_dummy_hash: str | None = None


def _dummy(ctx: Context) -> str:
    global _dummy_hash
    if _dummy_hash is None:
        _dummy_hash = ctx.passwords.hash(_DUMMY_HASH_SOURCE)
    return _dummy_hash


def validate_admin_username(username: object) -> str:
    if not isinstance(username, str) or not username.strip():
        raise InvalidInputError("The admin username is empty.")
    name = username.strip()
    if len(name) > 64 or any(ch.isspace() or ord(ch) < 32 for ch in name):
        raise InvalidInputError("The admin username must be at most 64 characters, without spaces.")
    return name


def jwt_secret(ctx: Context) -> str:
    """The signing key: from the settings if given, else the one ``init`` stored."""
    if ctx.settings.jwt_secret is not None:
        return ctx.settings.jwt_secret.get_secret_value()
    if ctx._jwt_secret is None:
        with ctx.uow() as uow:
            stored = uow.secrets.get(JWT_SECRET_NAME)
        if stored is None:
            raise AuthError("mailctl is not initialised yet: run `mailctl init` first.")
        ctx._jwt_secret = stored
    return ctx._jwt_secret


def initialize(
    ctx: Context, username: str | None = None, password: str | None = None
) -> InitResult:
    """Create the schema, the JWT secret and the first admin; safe to run again."""
    ctx.database.upgrade()
    name = validate_admin_username(username or ctx.settings.admin_username)
    given = password
    if given is None and ctx.settings.admin_password is not None:
        given = ctx.settings.admin_password.get_secret_value() or None
    generated = None
    with ctx.uow() as uow:
        secret_created = False
        if uow.secrets.get(JWT_SECRET_NAME) is None:
            uow.secrets.add(JWT_SECRET_NAME, secrets.token_urlsafe(48))
            secret_created = True
        admin_created = False
        if uow.admins.count() == 0:
            if given is None:
                generated = secrets.token_urlsafe(18)
                given = generated
            uow.admins.add(name, ctx.passwords.hash(given))
            uow.audit.add(admin="init", action="create_admin", target=name, client_address=None)
            admin_created = True
        uow.commit()
    return InitResult(name, admin_created, generated, secret_created)


def create_admin(ctx: Context, actor: Actor, username: str, password: str) -> AdminIdentity:
    """Add another admin account."""
    name = validate_admin_username(username)
    hashed = ctx.passwords.hash(password)
    with ctx.uow() as uow:
        if uow.admins.by_username(name) is not None:
            raise ConflictError(f"The admin {name} exists already.")
        admin = uow.admins.add(name, hashed)
        uow.audit.add(
            admin=actor.name, action="create_admin", target=name, client_address=actor.address
        )
        uow.commit()
        return AdminIdentity(admin.id, admin.username)


def delete_admin(ctx: Context, actor: Actor, username: str) -> None:
    """Remove an admin; its tokens stop working at once."""
    with ctx.uow() as uow:
        admin = uow.admins.by_username(username)
        if admin is None:
            raise NotFoundError(f"There is no admin {username}.")
        uow.admins.delete(admin)
        uow.audit.add(
            admin=actor.name, action="delete_admin", target=username, client_address=actor.address
        )
        uow.commit()


def login(ctx: Context, username: object, password: object, client_address: str | None) -> str:
    """Check an admin's credentials and return a signed token (HS256, with expiry)."""
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise AuthError(BAD_CREDENTIALS)
    attempt = throttle.begin_attempt(ctx, client_address, username)
    with ctx.uow() as uow:
        admin = uow.admins.by_username(username)
        stored = admin.password if admin is not None else None
        identity = AdminIdentity(admin.id, admin.username) if admin is not None else None
    # The hash is checked outside the transaction: it takes long, and holds no row.
    ok = ctx.passwords.verify(password, stored if stored is not None else _dummy(ctx))
    if identity is None or not ok:
        raise AuthError(BAD_CREDENTIALS)
    throttle.attempt_succeeded(ctx, attempt)
    return issue_token(ctx, identity)


def issue_token(ctx: Context, identity: AdminIdentity) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(identity.id),
        "username": identity.username,
        "iat": now,
        "exp": now + timedelta(minutes=ctx.settings.token_ttl_minutes),
        "jti": secrets.token_hex(8),
    }
    return jwt.encode(claims, jwt_secret(ctx), algorithm=JWT_ALGORITHM)


def authenticate(ctx: Context, token: str | None) -> AdminIdentity:
    """Return the admin a token speaks for, or raise AuthError (401)."""
    if not token:
        raise AuthError("An Auth-token header is required; get a token from POST /auth.")
    try:
        claims = jwt.decode(
            token,
            jwt_secret(ctx),
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("The token has expired; log in again at POST /auth.") from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError("The token is not valid.") from exc
    try:
        admin_id = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise AuthError("The token is not valid.") from exc
    with ctx.uow() as uow:
        admin = uow.admins.get(admin_id)
        if admin is None or admin.username != claims.get("username"):
            raise AuthError("The admin this token was issued to no longer exists.")
        return AdminIdentity(admin.id, admin.username)

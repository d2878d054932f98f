"""Admin accounts, login with throttling, and the JWT tokens the API accepts."""

from __future__ import annotations

import contextlib
import random
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from mailctl.domain import passwords
from mailctl.errors import (
    AuthError,
    ConflictError,
    DiskFullError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
)
from mailctl.services.context import Actor, Context
from mailctl.storage.tables import AdminToken

JWT_ALGORITHM = "HS256"
JWT_SECRET_NAME = "jwt_secret"  # noqa: S105 - the row name, not a secret
BAD_CREDENTIALS = "Username/password is not correct"
# Rows of expired tokens are dropped now and then, on a login, rather than on every one.
PRUNE_CHANCE = 0.05
LOG_IN_AGAIN = "log in again at POST /auth."
# Why a token row was revoked, and what a request that still carries it is told.
REVOKED_MESSAGES = {
    "logout": "This token was logged out; " + LOG_IN_AGAIN,
    "revoked": "This token was revoked; " + LOG_IN_AGAIN,
    "password": "The admin's password changed after this token was issued; " + LOG_IN_AGAIN,
}


@dataclass(frozen=True)
class AdminIdentity:
    """The admin a valid token speaks for, and the id (``jti``) of that token."""

    id: int
    username: str
    token_id: str | None = None


@dataclass(frozen=True)
class InitResult:
    """What ``mailctl init`` did."""

    admin_username: str
    admin_created: bool
    generated_password: str | None
    secret_created: bool


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
            uow.audit.record(Actor("init"), "create_admin", name)
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
        uow.audit.record(actor, "create_admin", name)
        uow.commit()
        return AdminIdentity(admin.id, admin.username)


def delete_admin(ctx: Context, actor: Actor, username: str) -> None:
    """Remove an admin; its tokens stop working at once."""
    with ctx.uow() as uow:
        admin = uow.admins.by_username(username)
        if admin is None:
            raise NotFoundError(f"There is no admin {username}.")
        uow.admins.delete(admin)
        uow.audit.record(actor, "delete_admin", username)
        uow.commit()
    ctx.tokens.revoked()


def login(
    ctx: Context,
    username: object,
    password: object,
    client_address: str | None,
    user_agent: str | None = None,
) -> str:
    """Check an admin's credentials and return a signed token (HS256, with expiry)."""
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        raise AuthError(BAD_CREDENTIALS)
    attempt = ctx.throttle.begin_attempt(client_address, username)
    with ctx.uow() as uow:
        admin = uow.admins.by_username(username)
        stored = admin.password if admin is not None else None
        identity = AdminIdentity(admin.id, admin.username) if admin is not None else None
        # Read with the hash: a password change between here and the token's row raises
        # the generation, so a token won with the old password is born revoked.
        generation = admin.token_generation if admin is not None else 0
    # The hash is checked outside the transaction: it takes long, and holds no row.
    # An unknown username is checked against a dummy hash, so it costs what a wrong password
    # does.
    checked = stored if stored is not None else ctx.passwords.dummy_hash()
    ok = ctx.passwords.verify(password, checked)
    if identity is None or stored is None or not ok:
        raise AuthError(BAD_CREDENTIALS)
    ctx.throttle.attempt_succeeded(attempt)
    # Housekeeping, like the pruning below: a busy or full database must not fail the
    # login; the weaker hash still verifies, and the next login tries again.
    with contextlib.suppress(UnavailableError, DiskFullError):
        _rehash_if_weaker(ctx, identity.id, password, stored)
    if random.random() < PRUNE_CHANCE:  # noqa: S311 - spreading work, not a secret
        # Housekeeping: a busy database must not fail the login; a later one prunes.
        with contextlib.suppress(UnavailableError):
            prune_tokens(ctx)
    return issue_token(
        ctx, identity, generation=generation, client_address=client_address, user_agent=user_agent
    )


def _rehash_if_weaker(ctx: Context, admin_id: int, password: str, stored: str) -> bool:
    """Replace a stored hash weaker than the ones made now by a fresh one; whether it did.

    Runs after a successful login, the only time the plain password is known: a row of
    an older scheme or cost (a migrated SHA512-CRYPT row, an Argon2id row of lower cost)
    gets today's scheme and cost. The row changes only if it still holds the hash that
    was checked, so a password change meanwhile wins; tokens stay valid (same password).
    """
    if not passwords.needs_rehash(stored):
        return False
    fresh = ctx.passwords.hash(password)
    with ctx.uow() as uow:
        replaced = uow.admins.rehash(admin_id, stored, fresh)
        uow.commit()
    return replaced


def issue_token(
    ctx: Context,
    identity: AdminIdentity,
    *,
    generation: int | None = None,
    client_address: str | None = None,
    user_agent: str | None = None,
) -> str:
    """Sign a token for the admin and record its id, so it can be listed and revoked.

    ``generation`` is the admin's token generation read together with the password that
    was checked; without it, the current one.
    """
    now = time.time()
    expires = now + ctx.settings.token_ttl_minutes * 60
    jti = secrets.token_hex(8)
    secret = jwt_secret(ctx)
    with ctx.uow() as uow:
        if generation is None:
            admin = uow.admins.get(identity.id)
            if admin is None:
                raise AuthError("The admin this token was issued to no longer exists.")
            generation = admin.token_generation
        uow.admin_tokens.add(
            AdminToken(
                jti=jti,
                admin_id=identity.id,
                generation=generation,
                issued_at=now,
                expires_at=expires,
                client_address=(client_address or None) and client_address[:64],
                user_agent=(user_agent or None) and user_agent[:200],
            )
        )
        uow.commit()
    claims = {
        "sub": str(identity.id),
        "username": identity.username,
        "iat": datetime.fromtimestamp(now, UTC),
        "exp": datetime.fromtimestamp(expires, UTC),
        "jti": jti,
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def prune_tokens(ctx: Context, now: float | None = None) -> int:
    """Forget the rows of expired tokens (their expiry refuses them anyway); how many."""
    with ctx.uow() as uow:
        count = uow.admin_tokens.prune(time.time() if now is None else now)
        uow.commit()
    return count


def cached_identity(ctx: Context, token: str | None) -> AdminIdentity | None:
    """The admin of a token this process accepted a moment ago, without the database;
    None when the token must be checked (``authenticate``)."""
    if not token:
        return None
    found: AdminIdentity | None = ctx.tokens.get(token)
    return found


def authenticate(ctx: Context, token: str | None) -> AdminIdentity:
    """Return the admin a token speaks for, or raise AuthError (401).

    Besides the signature and expiry, the token's row must exist, not be revoked, and
    carry the admin's current token generation: one look-up by primary key, joined
    with the admin it names. A token that passed is trusted for a moment
    (``ctx.tokens``), until a revocation tells every process otherwise.
    """
    if not token:
        raise AuthError("An Auth-token header is required; get a token from POST /auth.")
    cached = cached_identity(ctx, token)
    if cached is not None:
        return cached
    seen = ctx.tokens.snapshot()
    try:
        claims = jwt.decode(
            token,
            jwt_secret(ctx),
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("The token has expired; " + LOG_IN_AGAIN) from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError("The token is not valid.") from exc
    try:
        admin_id = int(claims["sub"])
        expires_at = float(claims["exp"])
    except (TypeError, ValueError) as exc:
        raise AuthError("The token is not valid.") from exc
    jti = claims.get("jti")
    with ctx.uow() as uow:
        found = uow.admin_tokens.with_admin(jti) if isinstance(jti, str) and jti else None
        if found is None:
            if uow.admins.get(admin_id) is None:
                raise AuthError("The admin this token was issued to no longer exists.")
            raise AuthError("This token is not known here (or was cleared); " + LOG_IN_AGAIN)
        row, admin = found
        if admin.id != admin_id or admin.username != claims.get("username"):
            raise AuthError("The token is not valid.")
        if row.revoked_at is not None:
            raise AuthError(
                REVOKED_MESSAGES.get(row.revoked_reason or "", REVOKED_MESSAGES["revoked"])
            )
        if row.generation != admin.token_generation:
            raise AuthError(
                "The admin's password changed or its tokens were revoked after this token "
                "was issued; " + LOG_IN_AGAIN
            )
        identity = AdminIdentity(admin.id, admin.username, row.jti)
    ctx.tokens.put(token, identity, expires_at, seen)
    return identity

"""Admin accounts, login with throttling, and the JWT tokens the API accepts."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import random
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from mailctl.domain import passwords
from mailctl.errors import (
    AuthError,
    DiskFullError,
    InvalidInputError,
    SecondFactorError,
    UnavailableError,
)
from mailctl.services import two_factor
from mailctl.services.context import Actor, Context
from mailctl.services.scope import DOMAIN_ADMIN, SUPERADMIN, Scope
from mailctl.storage.tables import Admin, AdminToken
from mailctl.storage.uow import UnitOfWork

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


# What an identity built without a scope may do: nothing (fail closed).
NO_RIGHTS = Scope(role=DOMAIN_ADMIN, domains={})
DISABLED = "This admin account is disabled; a superadmin can enable it again."
NOT_FOR_ADMINS = "This is a mailbox's token: it is accepted only by the /self operations."


@dataclass(frozen=True)
class AdminIdentity:
    """The admin a valid token speaks for, the id (``jti``) of that token, and what the
    admin may touch."""

    id: int
    username: str
    token_id: str | None = None
    scope: Scope = NO_RIGHTS
    # A token that may only enrol a second factor: the policy requires one, and this
    # admin logged in before it had one (services.two_factor).
    enrol_only: bool = False


KEY_PREFIX = "mailctl_"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def key_digest(secret: str) -> str:
    """What is stored of an API key's secret (random, 256 bits: a fast hash will do)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def scope_of(uow: UnitOfWork, admin: Admin) -> Scope:
    """An admin's own rights: every domain for a superadmin, else its granted ones."""
    if admin.role == SUPERADMIN:
        return Scope(role=SUPERADMIN)
    return Scope(role=DOMAIN_ADMIN, domains=uow.admins.granted(admin.id), grants_of=admin.id)


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


@dataclass(frozen=True)
class LoggedIn:
    """A login's token; ``enrol_only`` when it may only enrol a second factor."""

    token: str
    enrol_only: bool = False


def login(
    ctx: Context,
    username: object,
    password: object,
    client_address: str | None,
    user_agent: str | None = None,
) -> str:
    """The token of a login without a second factor (``login_with_code`` without a code)."""
    return login_with_code(ctx, username, password, client_address, user_agent).token


def login_with_code(
    ctx: Context,
    username: object,
    password: object,
    client_address: str | None,
    user_agent: str | None = None,
    code: object = None,
) -> LoggedIn:
    """Check an admin's credentials and return a signed token (HS256, with expiry).

    An admin with a second factor gives a ``code`` too (services.two_factor): without it,
    or with a wrong or used one, SecondFactorError. A code missing after a right password
    is not counted as a failed login (the client asks again with it); a wrong one is.
    """
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
        disabled = admin.disabled if admin is not None else False
        second = (
            two_factor.needed_at_login(uow, admin.id) if admin is not None else two_factor.NOTHING
        )
    # The hash is checked outside the transaction: it takes long, and holds no row.
    # An unknown username is checked against a dummy hash, so it costs what a wrong password
    # does.
    checked = stored if stored is not None else ctx.passwords.dummy_hash()
    ok = ctx.passwords.verify(password, checked)
    if identity is None or stored is None or not ok:
        raise AuthError(BAD_CREDENTIALS)
    if disabled:
        ctx.throttle.attempt_succeeded(attempt)
        # Said only to who knows the password: to anyone else it is a wrong password.
        raise AuthError(DISABLED)
    if second == two_factor.CODE:
        if two_factor.is_missing(code):
            # Taken off the counts, not cleared: clearing here would let a guesser of
            # codes who knows the password start its count afresh.
            ctx.throttle.attempt_forgiven(attempt)
            raise SecondFactorError(two_factor.CODE_NEEDED)
        two_factor.check_login_code(ctx, identity.id, identity.username, code, client_address)
    ctx.throttle.attempt_succeeded(attempt)
    # Housekeeping, like the pruning below: a busy or full database must not fail the
    # login; the weaker hash still verifies, and the next login tries again.
    with contextlib.suppress(UnavailableError, DiskFullError):
        _rehash_if_weaker(ctx, identity.id, password, stored)
    if random.random() < PRUNE_CHANCE:  # noqa: S311 - spreading work, not a secret
        # Housekeeping: a busy database must not fail the login; a later one prunes.
        with contextlib.suppress(UnavailableError):
            prune_tokens(ctx)
    enrol_only = second == two_factor.ENROL
    token = issue_token(
        ctx,
        identity,
        generation=generation,
        client_address=client_address,
        user_agent=user_agent,
        enrol_only=enrol_only,
    )
    return LoggedIn(token, enrol_only)


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
    enrol_only: bool = False,
) -> str:
    """Sign a token for the admin and record its id, so it can be listed and revoked.

    ``generation`` is the admin's token generation read together with the password that
    was checked; without it, the current one. An ``enrol_only`` token may only enrol a
    second factor (its claim ``totp_enrol``).
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
    if enrol_only:
        claims["totp_enrol"] = True
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


@dataclass(frozen=True)
class KeyIdentity(AdminIdentity):
    """An admin acting through an API key: the key's id and the ranges it is accepted from."""

    key_id: str = ""
    networks: tuple[Network, ...] = ()

    def check_address(self, address: str | None) -> None:
        """AuthError unless the request came from one of the key's ranges (if it has any)."""
        if not self.networks:
            return
        try:
            client = ipaddress.ip_address((address or "").strip())
        except ValueError:
            client = None
        if client is None or not any(client in network for network in self.networks):
            raise AuthError("This API key is not accepted from this address.")


def authenticate_key(ctx: Context, token: str) -> tuple[KeyIdentity, float]:
    """The admin a key acts for, narrowed by the key, and until when it may be trusted."""
    body = token[len(KEY_PREFIX) :]
    key_id, sep, secret = body.partition("_")
    if not sep or not key_id or not secret or len(key_id) > 32:
        raise AuthError("The API key is not valid.")
    now = time.time()
    with ctx.uow() as uow:
        found = uow.api_keys.with_admin(key_id)
        # Compared even when no row was found, so a wrong id costs what a wrong secret does.
        stored = found[0].secret_hash if found is not None else key_digest(secrets.token_hex(8))
        if not hmac.compare_digest(stored, key_digest(secret)) or found is None:
            raise AuthError("The API key is not valid.")
        key, admin = found
        if key.revoked_at is not None:
            raise AuthError("This API key was revoked.")
        if key.expires_at is not None and key.expires_at <= now:
            raise AuthError("This API key has expired; make a new one.")
        if admin.disabled:
            raise AuthError(DISABLED)
        own = scope_of(uow, admin)
        if key.all_domains:
            domains = own.domains
            bound_to = None
        else:
            bound = uow.api_keys.domains_map(key.id)
            domains = {i: n for i, n in bound.items() if own.sees_id(i)}
            bound_to = key.id
        scope = Scope(
            role=own.role,
            domains=domains,
            read_only=key.read_only,
            grants_of=own.grants_of,
            key_domains_of=bound_to,
        )
        networks = tuple(ipaddress.ip_network(n) for n in (key.networks or "").split(",") if n)
        identity = KeyIdentity(
            admin.id, admin.username, None, scope, key_id=key.key_id, networks=networks
        )
        expires = key.expires_at if key.expires_at is not None else now + 86400 * 3650
    return identity, expires


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
    if token.startswith(KEY_PREFIX):
        key_identity, key_expires = authenticate_key(ctx, token)
        ctx.tokens.put(token, key_identity, key_expires, seen)
        return key_identity
    try:
        claims = jwt.decode(
            token,
            jwt_secret(ctx),
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("The token has expired; " + LOG_IN_AGAIN) from exc
    except jwt.InvalidAudienceError as exc:
        # Only mailbox tokens (services.mailbox_auth) name an audience.
        raise AuthError(NOT_FOR_ADMINS) from exc
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
        if admin.disabled:
            raise AuthError(DISABLED)
        identity = AdminIdentity(
            admin.id,
            admin.username,
            row.jti,
            scope_of(uow, admin),
            enrol_only=claims.get("totp_enrol") is True,
        )
    ctx.tokens.put(token, identity, expires_at, seen)
    return identity

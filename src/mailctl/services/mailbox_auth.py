"""Mailbox owners: log in with the address and password Dovecot checks, and their tokens.

A mailbox token is of its own kind: its JWT carries the audience ``mailctl:mailbox``, which
the admin check refuses (PyJWT refuses an audience it was not told to expect), and its
row lives in ``mailbox_tokens``, where no admin token is; so neither kind is ever taken
for the other. A token is bound to the mailbox's password hash as it was at login: any
change of the password, by whoever, refuses it. Logins count against the same throttle
as the admins' (services.throttle), under a key of their own per address.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt

from mailctl.domain.names import parse_address
from mailctl.errors import AuthError, ConflictError, MailctlError, UnavailableError
from mailctl.services.auth import JWT_ALGORITHM, KEY_PREFIX, PRUNE_CHANCE, jwt_secret
from mailctl.services.context import Actor, Context
from mailctl.services.mailboxes import hash_new_password
from mailctl.storage.tables import MailboxToken

AUDIENCE = "mailctl:mailbox"
BAD_CREDENTIALS = "Email/password is not correct"
LOG_IN_AGAIN = "log in again at POST /self/auth."
REVOKED = {
    "logout": "This token was logged out; " + LOG_IN_AGAIN,
    "password": "The mailbox's password changed after this token was issued; " + LOG_IN_AGAIN,
}
NOT_FOR_MAILBOXES = "This is an admin's token or key; a mailbox owner logs in at POST /self/auth."


@dataclass(frozen=True)
class MailboxIdentity:
    """The mailbox a valid mailbox token speaks for, and that token's id."""

    id: int
    email: str
    token_id: str

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]

    def actor(self, address: str | None) -> Actor:
        """The mailbox as the audit log names it."""
        return Actor(f"mailbox:{self.email}", address)


def password_digest(stored: str) -> str:
    """What a token keeps of the password hash it was issued under."""
    return hashlib.sha256(stored.encode("utf-8")).hexdigest()


def _throttle_name(email: str) -> str:
    # Its own counter per address: an admin named like a mailbox is not locked out by it.
    return "mailbox:" + email.strip().lower()


def login(ctx: Context, email: object, password: object, client_address: str | None) -> str:
    """A token for the mailbox ``email`` if ``password`` is the one Dovecot would accept.

    The stored ``{SCHEME}`` hash is verified as Dovecot verifies it (domain.passwords);
    an unknown address costs what a wrong password does, and is told the same.
    """
    if not isinstance(email, str) or not isinstance(password, str) or not email.strip():
        raise AuthError(BAD_CREDENTIALS)
    attempt = ctx.throttle.begin_attempt(client_address, _throttle_name(email))
    try:
        wanted: str | None = parse_address(email).email
    except MailctlError:
        wanted = None
    with ctx.uow() as uow:
        user = uow.users.by_email(wanted) if wanted is not None else None
        found = (user.id, user.email, user.password) if user is not None else None
    checked = found[2] if found is not None else ctx.passwords.dummy_hash()
    ok = ctx.passwords.verify(password, checked)
    if found is None or not ok:
        raise AuthError(BAD_CREDENTIALS)
    ctx.throttle.attempt_succeeded(attempt)
    if random.random() < PRUNE_CHANCE:  # noqa: S311 - spreading work, not a secret
        # Housekeeping: a busy database must not fail the login; a later one prunes.
        with contextlib.suppress(UnavailableError):
            prune_tokens(ctx)
    return issue_token(ctx, found[0], found[1], found[2], client_address)


def issue_token(
    ctx: Context, user_id: int, email: str, stored: str, client_address: str | None = None
) -> str:
    """Sign a mailbox token and record its id, bound to the password hash ``stored``."""
    now = time.time()
    expires = now + ctx.settings.token_ttl_minutes * 60
    jti = secrets.token_hex(8)
    secret = jwt_secret(ctx)
    with ctx.uow() as uow:
        uow.mailbox_tokens.add(
            MailboxToken(
                jti=jti,
                user_id=user_id,
                password_digest=password_digest(stored),
                issued_at=now,
                expires_at=expires,
                client_address=(client_address or None) and client_address[:64],
            )
        )
        uow.commit()
    claims = {
        "sub": str(user_id),
        "email": email,
        "aud": AUDIENCE,
        "iat": datetime.fromtimestamp(now, UTC),
        "exp": datetime.fromtimestamp(expires, UTC),
        "jti": jti,
    }
    return jwt.encode(claims, secret, algorithm=JWT_ALGORITHM)


def authenticate(ctx: Context, token: str | None) -> MailboxIdentity:
    """The mailbox a mailbox token speaks for, or AuthError (401).

    One indexed look-up per request, joined with the mailbox: the row must exist, not be
    revoked, and the mailbox's password hash must be the one the token was issued under.
    """
    if not token:
        raise AuthError("An Auth-token header is required; get a token from POST /self/auth.")
    if token.startswith(KEY_PREFIX):
        raise AuthError(NOT_FOR_MAILBOXES)
    try:
        claims = jwt.decode(
            token,
            jwt_secret(ctx),
            algorithms=[JWT_ALGORITHM],
            audience=AUDIENCE,
            options={"require": ["exp", "iat", "sub", "jti", "aud"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise AuthError("The token has expired; " + LOG_IN_AGAIN) from exc
    except jwt.MissingRequiredClaimError as exc:
        if exc.claim == "aud":
            raise AuthError(NOT_FOR_MAILBOXES) from exc
        raise AuthError("The token is not valid.") from exc
    except jwt.InvalidAudienceError as exc:
        raise AuthError(NOT_FOR_MAILBOXES) from exc
    except jwt.InvalidTokenError as exc:
        raise AuthError("The token is not valid.") from exc
    jti = claims["jti"]
    try:
        user_id = int(claims["sub"])
    except (TypeError, ValueError) as exc:
        raise AuthError("The token is not valid.") from exc
    with ctx.uow() as uow:
        found = uow.mailbox_tokens.with_user(jti) if isinstance(jti, str) and jti else None
        if found is None:
            raise AuthError(
                "This token is not known here (or its mailbox is gone); " + LOG_IN_AGAIN
            )
        row, user = found
        if user.id != user_id or user.email != claims.get("email"):
            raise AuthError("The token is not valid.")
        if row.revoked_at is not None:
            raise AuthError(REVOKED.get(row.revoked_reason or "", REVOKED["logout"]))
        if row.password_digest != password_digest(user.password):
            raise AuthError(REVOKED["password"])
        if row.expires_at <= time.time():
            raise AuthError("The token has expired; " + LOG_IN_AGAIN)
        return MailboxIdentity(user.id, user.email, row.jti)


def logout(ctx: Context, mailbox: MailboxIdentity) -> None:
    """Refuse the token ``mailbox`` came with from now on."""
    with ctx.uow() as uow:
        uow.mailbox_tokens.revoke(mailbox.token_id, time.time(), "logout")
        uow.commit()


@dataclass(frozen=True)
class PasswordChanged:
    """A mailbox owner's password change: the new token, and how many tokens it revoked."""

    token: str
    revoked: int


def change_password(
    ctx: Context,
    mailbox: MailboxIdentity,
    current: object,
    new: object,
    client_address: str | None,
) -> PasswordChanged:
    """Change the mailbox's own password after checking the current one (throttled like a
    login); every token of the mailbox is revoked, and a new one is returned."""
    if not isinstance(current, str) or not current:
        raise AuthError("The current password is not correct.")
    attempt = ctx.throttle.begin_attempt(client_address, _throttle_name(mailbox.email))
    with ctx.uow() as uow:
        user = uow.users.get(mailbox.id)
        stored = user.password if user is not None else ctx.passwords.dummy_hash()
    if user is None or not ctx.passwords.verify(current, stored):
        raise AuthError("The current password is not correct.")
    ctx.throttle.attempt_succeeded(attempt)
    hashed = hash_new_password(ctx, new)
    now = time.time()
    with ctx.uow() as uow:
        row = uow.users.by_email(mailbox.email, lock=True)
        if row is None or row.id != mailbox.id:
            raise AuthError("This mailbox no longer exists; " + LOG_IN_AGAIN)
        if row.password != stored:
            raise ConflictError("The password changed meanwhile; log in again and retry.")
        row.password = hashed
        revoked = uow.mailbox_tokens.revoke_all(row.id, now, "password")
        uow.audit.record(
            mailbox.actor(client_address), "change_password", row.email, domain=mailbox.domain
        )
        uow.commit()
    ctx.changed("users")
    token = issue_token(ctx, mailbox.id, mailbox.email, hashed, client_address)
    return PasswordChanged(token, revoked)


def prune_tokens(ctx: Context, now: float | None = None) -> int:
    """Forget the rows of expired mailbox tokens; how many."""
    with ctx.uow() as uow:
        count = uow.mailbox_tokens.prune(time.time() if now is None else now)
        uow.commit()
    return count

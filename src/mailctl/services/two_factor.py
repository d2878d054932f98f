"""Two-factor login for admins: TOTP enrolment, codes at login, recovery codes, the policy.

An admin enrols in two steps: ``start_enrolment`` makes a secret (shown this once, as
text, URI and QR code), ``confirm_enrolment`` turns it on with a first code from the
authenticator and hands out ten one-time recovery codes. From then on a login needs a
code as well as the password (``check_login_code``). Each code works once: the step it
belongs to must be later than the last step used, and a recovery code is spent when used.

When a superadmin requires two-factor login for every admin, an admin who has not enrolled
still logs in with its password, but gets a token that may only enrol
(``AdminIdentity.enrol_only``): nobody is locked out by the policy, the superadmin who
turns it on included, and nobody works without a second factor.
"""

from __future__ import annotations

import base64
import hmac
import secrets
import time
from dataclasses import dataclass

from mailctl.domain import qr, totp
from mailctl.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    HostStateError,
    InvalidInputError,
    NotFoundError,
    SecondFactorError,
)
from mailctl.services import totp_key
from mailctl.services.context import Actor, Context
from mailctl.services.scope import require_superadmin
from mailctl.storage.tables import Admin
from mailctl.storage.uow import UnitOfWork

ISSUER = "mailctl"
POLICY_SETTING = "totp_required"
RECOVERY_CODES = 10
# A recovery code: 16 base32 letters and digits (80 bits), shown in groups of four.
RECOVERY_CODE_LENGTH = 16
_RECOVERY_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")

CODE_NEEDED = (
    "This admin logs in with a two-factor code: send the 6-digit code of the authenticator "
    "app, or a recovery code, in the field 'code'."
)
WRONG_CODE = "The two-factor code is not correct."
USED_CODE = "This two-factor code was used already; wait for the next one."
USED_RECOVERY_CODE = "This recovery code was used already; each works once."
ENROL_FIRST = (
    "Two-factor login is required on this server: enrol at POST /auth/totp, confirm at "
    "POST /auth/totp/confirm, then log in again with a code."
)

# What a login still needs after the password: nothing, a code, or an enrolment.
NOTHING, CODE, ENROL = "nothing", "code", "enrol"


@dataclass(frozen=True)
class Enrolment:
    """A secret just made, shown this once: as text, and as the URI of its QR code."""

    username: str
    secret: str
    uri: str

    def qr_svg(self) -> str:
        return qr.svg(self.uri)

    def qr_png(self) -> str:
        """The QR code as a PNG image, base64-encoded."""
        return qr.png_base64(self.uri)

    def qr_terminal(self) -> str:
        """The QR code in Unicode half blocks, for a terminal."""
        return qr.terminal(self.uri)


@dataclass(frozen=True)
class TotpState:
    """Where an admin stands: enrolled (a secret exists), confirmed (login asks for codes)."""

    username: str
    enrolled: bool
    confirmed: bool
    recovery_codes_left: int
    required: bool


def _admin(uow: UnitOfWork, username: object) -> Admin:
    name = username.strip() if isinstance(username, str) else ""
    admin = uow.admins.by_username(name) if name else None
    if admin is None:
        raise NotFoundError(f"There is no admin {name[:64]}.")
    return admin


# The words that turn the policy on and off (as a yes/no field of the API takes them).
SWITCH_WORDS = {"true": True, "1": True, "yes": True, "on": True}
SWITCH_WORDS |= {"false": False, "0": False, "no": False, "off": False}


def parse_switch(value: object, name: str) -> bool:
    """True or False from on/off, true/false, yes/no or 1/0; InvalidInputError otherwise."""
    word = value.strip().lower() if isinstance(value, str) else ""
    if word not in SWITCH_WORDS:
        raise InvalidInputError(f"The field '{name}' must be true or false (on or off).")
    return SWITCH_WORDS[word]


def is_required(uow: UnitOfWork) -> bool:
    """Whether every admin must log in with a second factor (the superadmins' policy)."""
    return uow.app_settings.get(POLICY_SETTING) == "true"


def needed_at_login(uow: UnitOfWork, admin_id: int) -> str:
    """What a login of this admin needs besides the password: NOTHING, CODE or ENROL."""
    row = uow.two_factor.get(admin_id)
    if row is not None and row.confirmed_at is not None:
        return CODE
    return ENROL if is_required(uow) else NOTHING


def _normalised(code: object) -> str:
    text = code if isinstance(code, str) else ""
    return "".join(ch for ch in text if ch not in " -\t").lower()


def _format_recovery(code: str) -> str:
    return "-".join(code[i : i + 4] for i in range(0, len(code), 4))


def _new_recovery_code() -> str:
    # 10 random bytes are exactly 16 base32 characters, with no padding.
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()


def account_name(ctx: Context, username: str) -> str:
    """How the authenticator app lists the account: the admin, at the mail host if known."""
    host = ctx.settings.mail_hostname.strip()
    return f"{username}@{host}" if host else username


def start_enrolment(ctx: Context, actor: Actor, username: object) -> Enrolment:
    """Make a new TOTP secret for an admin, not yet in use until confirmed.

    An unconfirmed enrolment is replaced; a confirmed one must be turned off first.
    """
    secret = totp.new_secret()
    with ctx.uow() as uow:
        admin = _admin(uow, username)
        row = uow.two_factor.get(admin.id)
        if row is not None and row.confirmed_at is not None:
            raise ConflictError(
                f"Two-factor login is on already for {admin.username}: turn it off first "
                "(DELETE /auth/totp, or `mailctl admin totp off`)."
            )
        key = totp_key.load(ctx, uow, create=True)
        assert key is not None  # made when missing (create=True)
        uow.two_factor.start(admin.id, key.seal(secret, admin.id), time.time())
        uow.audit.record(actor, "start_totp", admin.username)
        uow.commit()
        name = admin.username
    uri = totp.provisioning_uri(secret, account_name(ctx, name), ISSUER)
    return Enrolment(name, totp.encode_secret(secret), uri)


def _key(ctx: Context, uow: UnitOfWork) -> totp_key.TotpKey:
    """The key that opens the secrets there are; HostStateError if this server has none."""
    key = totp_key.load(ctx, uow, create=False)
    if key is None:
        # A sealed secret, but neither a key nor a check value: the check row was deleted.
        raise HostStateError(totp_key.MISSING.format(where="the key file"))
    return key


def confirm_enrolment(
    ctx: Context, actor: Actor, username: object, code: object
) -> tuple[str, list[str]]:
    """Turn an enrolment on with a first code; the admin's name and its recovery codes.

    The recovery codes are shown this once: only their digests are kept.
    """
    given = _normalised(code)
    if not totp.is_code(given):
        raise InvalidInputError("The field 'code' must be the 6-digit code the app shows.")
    now = time.time()
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODES)]
    with ctx.uow() as uow:
        admin = _admin(uow, username)
        row = uow.two_factor.get(admin.id)
        if row is None:
            raise NotFoundError(
                f"{admin.username} has no two-factor enrolment to confirm: start one first "
                "(POST /auth/totp, or `mailctl admin totp enrol`)."
            )
        if row.confirmed_at is not None:
            raise ConflictError(f"Two-factor login is on already for {admin.username}.")
        key = _key(ctx, uow)
        step = totp.matching_step(key.open(row.secret, admin.id), given, now)
        if step is None:
            raise InvalidInputError(
                "The code is not correct: type the code the app shows now (and check that "
                "the phone's clock is right)."
            )
        if not uow.two_factor.confirm(admin.id, step, now):
            raise ConflictError(f"Two-factor login is on already for {admin.username}.")
        uow.two_factor.add_codes(admin.id, [key.code_digest(c) for c in codes])
        uow.audit.record(actor, "confirm_totp", admin.username, f"recovery_codes={len(codes)}")
        uow.commit()
        name = admin.username
    return name, [_format_recovery(c) for c in codes]


def state(ctx: Context, username: object) -> TotpState:
    with ctx.uow() as uow:
        admin = _admin(uow, username)
        row = uow.two_factor.get(admin.id)
        confirmed = row is not None and row.confirmed_at is not None
        return TotpState(
            admin.username,
            enrolled=row is not None,
            confirmed=confirmed,
            recovery_codes_left=uow.two_factor.codes_left(admin.id) if confirmed else 0,
            required=is_required(uow),
        )


def _check_code(ctx: Context, uow: UnitOfWork, admin_id: int, code: str) -> str:
    """Spend ``code`` (a TOTP code or a recovery code) of an admin whose login asks for
    one, in ``uow``; what it was ("totp" or "recovery"). SecondFactorError if it fails."""
    row = uow.two_factor.get(admin_id)
    if row is None or row.confirmed_at is None:
        raise SecondFactorError(WRONG_CODE)
    key = _key(ctx, uow)
    if totp.is_code(code):
        step = totp.matching_step(key.open(row.secret, admin_id), code, time.time())
        if step is None:
            raise SecondFactorError(WRONG_CODE)
        if (row.last_step is not None and step <= row.last_step) or not (
            uow.two_factor.spend_step(admin_id, step)
        ):
            raise SecondFactorError(USED_CODE)
        return "totp"
    if len(code) != RECOVERY_CODE_LENGTH or not set(code) <= _RECOVERY_ALPHABET:
        raise SecondFactorError(WRONG_CODE)
    digest = key.code_digest(code)
    match = None
    # Compared with every code of the admin, used or not, each in constant time.
    for candidate in uow.two_factor.recovery_codes(admin_id):
        if hmac.compare_digest(candidate.digest, digest):
            match = candidate
    if match is None:
        raise SecondFactorError(WRONG_CODE)
    if match.used_at is not None or not uow.two_factor.spend_code(match.id, time.time()):
        raise SecondFactorError(USED_RECOVERY_CODE)
    return "recovery"


def is_missing(code: object) -> bool:
    """Whether a login gave no code at all (absent or blank)."""
    return not _normalised(code)


def check_login_code(
    ctx: Context, admin_id: int, username: str, code: object, address: str | None
) -> None:
    """The second step of a login: SecondFactorError unless ``code`` is a code not used
    before (a TOTP code of a later step than the last one, or an unused recovery code)."""
    given = _normalised(code)
    if not given:
        raise SecondFactorError(CODE_NEEDED)
    with ctx.uow() as uow:
        kind = _check_code(ctx, uow, admin_id, given)
        if kind == "recovery":
            left = uow.two_factor.codes_left(admin_id)
            uow.audit.record(
                Actor(username, address), "use_recovery_code", username, f"left={left}"
            )
        uow.commit()


def turn_off(
    ctx: Context,
    actor: Actor,
    admin_id: int,
    password: object,
    code: object,
) -> None:
    """The admin turns its own second factor off, proving it with its password or a code.

    Refused while the policy requires two-factor login (a superadmin can still reset it).
    A wrong password or code is a failed login under the throttle.
    """
    plain = password if isinstance(password, str) and password else None
    given = _normalised(code)
    if plain is None and not given:
        raise InvalidInputError("Give your 'password' or a current two-factor 'code'.")
    attempt = ctx.throttle.begin_attempt(actor.address, actor.name)
    with ctx.uow() as uow:
        admin = uow.admins.get(admin_id)
        if admin is None:
            raise AuthError("The admin this token was issued to no longer exists.")
        stored = admin.password
    if plain is not None:
        if not ctx.passwords.verify(plain, stored):
            raise AuthError("The password is not correct.")
        ctx.throttle.attempt_succeeded(attempt)
    with ctx.uow() as uow:
        row = uow.two_factor.get(admin_id)
        if row is None:
            raise NotFoundError(f"Two-factor login is not on for {actor.name}.")
        if plain is None:
            try:
                _check_code(ctx, uow, admin_id, given)
            except SecondFactorError as exc:
                raise AuthError(exc.message) from None
        if is_required(uow) and row.confirmed_at is not None:
            raise ConflictError(
                "Two-factor login is required on this server: it cannot be turned off; a "
                "superadmin can reset it (POST /admin/totp/reset) for a new enrolment."
            )
        uow.two_factor.remove(admin_id)
        uow.audit.record(actor, "disable_totp", actor.name)
        uow.commit()
    if plain is None:
        ctx.throttle.attempt_succeeded(attempt)


def remove(ctx: Context, actor: Actor, username: object, action: str = "reset_totp") -> bool:
    """Forget an admin's second factor (a superadmin or the host): it logs in with its
    password again, or enrols anew where the policy requires it. Whether it had one."""
    require_superadmin(actor, "reset another admin's two-factor login")
    with ctx.uow() as uow:
        admin = _admin(uow, username)
        had = uow.two_factor.remove(admin.id)
        uow.audit.record(actor, action, admin.username, None if had else "had none")
        uow.commit()
    return had


def set_required(ctx: Context, actor: Actor, required: bool) -> list[str]:
    """Require (or not) a second factor of every admin; the admins not enrolled yet."""
    require_superadmin(actor, "change the two-factor policy")
    with ctx.uow() as uow:
        uow.app_settings.put(POLICY_SETTING, "true" if required else "false")
        uow.audit.record(actor, "set_totp_policy", "server", f"required={str(required).lower()}")
        missing = uow.two_factor.without_second_factor()
        uow.commit()
    return missing


def refuse_enrol_only(enrol_only: bool) -> None:
    """ForbiddenError for a token that may only enrol (the policy requires a second factor)."""
    if enrol_only:
        raise ForbiddenError(ENROL_FIRST)

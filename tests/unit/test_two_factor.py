"""Two-factor login in the services: enrolment, codes spent once, recovery codes, the sealed
secret and its key, the policy. Per backend: the codes are spent by conditional UPDATEs and
the secret and digests must come back whole from each database."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest
from pydantic import SecretStr
from sqlalchemy import text
from tests.conftest import ADMIN, ADMIN_PASSWORD

from mailctl.config import Settings
from mailctl.domain import totp
from mailctl.errors import (
    AuthError,
    ConflictError,
    ForbiddenError,
    HostStateError,
    InvalidInputError,
    NotFoundError,
    SecondFactorError,
    ThrottledError,
)
from mailctl.services import admins, auth, totp_key, two_factor
from mailctl.services.context import Actor, Context
from mailctl.services.scope import DOMAIN_ADMIN, Scope

HOST = Actor("cli:root")
ADDRESS = "192.0.2.10"


CONFIRMED_AT: dict[str, int] = {}


def _code(secret: str, offset_steps: int = 0) -> str:
    """The code of the step ``offset_steps`` after the one the enrolment was confirmed in
    (or after now): within the window even if a step ends during the test."""
    start = CONFIRMED_AT.get(secret, totp.time_step(time.time()))
    return totp.hotp(totp.decode_secret(secret), start + offset_steps)


def _wrong(secret: str) -> str:
    """A six-digit code that no step of the window accepts."""
    raw = totp.decode_secret(secret)
    now = totp.time_step(time.time())
    taken = {totp.hotp(raw, step) for step in range(now - 2, now + 3)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in taken)


def _enrolled(ctx: Context, username: str = ADMIN) -> tuple[str, list[str]]:
    """Enrol and confirm ``username``; its base32 secret and recovery codes."""
    enrolment = two_factor.start_enrolment(ctx, HOST, username)
    step = totp.time_step(time.time())
    code = totp.hotp(totp.decode_secret(enrolment.secret), step)
    _, codes = two_factor.confirm_enrolment(ctx, HOST, username, code)
    CONFIRMED_AT[enrolment.secret] = step
    return enrolment.secret, codes


def _login(ctx: Context, code: str | None = None) -> auth.LoggedIn:
    return auth.login_with_code(ctx, ADMIN, ADMIN_PASSWORD, ADDRESS, None, code)


def test_enrolment_is_off_until_confirmed(ctx: Context) -> None:
    """A started enrolment changes nothing at login; the state says enrolled, not confirmed."""
    enrolment = two_factor.start_enrolment(ctx, HOST, ADMIN)
    assert enrolment.uri.startswith("otpauth://totp/mailctl:admin?secret=")
    assert len(totp.decode_secret(enrolment.secret)) == 20
    state = two_factor.state(ctx, ADMIN)
    assert (state.enrolled, state.confirmed, state.recovery_codes_left) == (True, False, 0)
    assert _login(ctx).token


def test_confirm_needs_the_right_code(ctx: Context) -> None:
    """A wrong or malformed code does not confirm; the right one answers 10 recovery codes."""
    enrolment = two_factor.start_enrolment(ctx, HOST, ADMIN)
    right = _code(enrolment.secret)
    with pytest.raises(InvalidInputError, match="not correct"):
        two_factor.confirm_enrolment(ctx, HOST, ADMIN, _wrong(enrolment.secret))
    with pytest.raises(InvalidInputError, match="6-digit"):
        two_factor.confirm_enrolment(ctx, HOST, ADMIN, "abc")
    _, codes = two_factor.confirm_enrolment(ctx, HOST, ADMIN, right)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert all(len(code) == 19 and code.count("-") == 3 for code in codes)
    state = two_factor.state(ctx, ADMIN)
    assert (state.confirmed, state.recovery_codes_left) == (True, 10)
    with pytest.raises(ConflictError):
        two_factor.confirm_enrolment(ctx, HOST, ADMIN, right)
    with pytest.raises(ConflictError):
        two_factor.start_enrolment(ctx, HOST, ADMIN)


def test_confirm_without_enrolment_is_not_found(ctx: Context) -> None:
    """Confirming before enrolling says to enrol first."""
    with pytest.raises(NotFoundError, match="start one first"):
        two_factor.confirm_enrolment(ctx, HOST, ADMIN, "123456")


def test_login_asks_for_a_code_and_spends_it_once(ctx: Context) -> None:
    """After confirming, a login needs a code; the code of a step works once, and the code
    used to confirm does not log in (its step is spent)."""
    secret, _ = _enrolled(ctx)
    with pytest.raises(SecondFactorError, match="field 'code'"):
        _login(ctx)
    with pytest.raises(SecondFactorError, match="used already"):
        _login(ctx, _code(secret))
    code = _code(secret, 1)
    assert _login(ctx, code).token
    with pytest.raises(SecondFactorError, match="used already"):
        _login(ctx, code)


def test_wrong_code_and_wrong_password(ctx: Context) -> None:
    """A wrong code is refused as such; a wrong password stays the documented message."""
    secret, _ = _enrolled(ctx)
    good = _code(secret, 1)
    with pytest.raises(SecondFactorError, match="not correct"):
        _login(ctx, _wrong(secret))
    with pytest.raises(AuthError, match="Username/password is not correct") as info:
        auth.login_with_code(ctx, ADMIN, "wrong", ADDRESS, None, good)
    assert not isinstance(info.value, SecondFactorError)
    assert _login(ctx, good).token


def test_an_older_step_than_the_last_used_is_refused(ctx: Context) -> None:
    """Once the next step's code is used, the current step's code (unused) is refused too."""
    secret, _ = _enrolled(ctx)
    assert _login(ctx, _code(secret, 1)).token
    with pytest.raises(SecondFactorError, match="used already"):
        _login(ctx, _code(secret, 0))


def test_recovery_code_works_once(ctx: Context) -> None:
    """A recovery code logs in once, in any case and without its dashes; then it is refused."""
    _, codes = _enrolled(ctx)
    assert _login(ctx, codes[0].upper().replace("-", "")).token
    with pytest.raises(SecondFactorError, match="used already"):
        _login(ctx, codes[0])
    assert two_factor.state(ctx, ADMIN).recovery_codes_left == 9
    with pytest.raises(SecondFactorError, match="not correct"):
        _login(ctx, "aaaa-bbbb-cccc-dddd")
    with ctx.uow() as uow:
        entry = uow.audit.recent(1)[0]
        assert (entry.action, entry.target, entry.detail) == ("use_recovery_code", ADMIN, "left=9")


def test_racing_logins_with_one_code_get_one_token(ctx: Context) -> None:
    """Two logins racing with the same code: exactly one gets a token."""
    secret, _ = _enrolled(ctx)
    code = _code(secret, 1)
    results: list[str] = []

    def attempt() -> None:
        try:
            _login(ctx, code)
            results.append("token")
        except SecondFactorError:
            results.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["refused", "token"]


def test_database_holds_no_secret_or_code(ctx: Context) -> None:
    """What a dump of the database shows: a sealed secret and digests, never the base32
    secret, its bytes or a recovery code."""
    secret, codes = _enrolled(ctx)
    with ctx.database.engine.connect() as conn:
        sealed = conn.execute(text("SELECT secret FROM admin_totp")).scalar_one()
        digests = conn.execute(text("SELECT digest FROM admin_recovery_codes")).scalars().all()
        settings = dict(conn.execute(text("SELECT name, value FROM app_settings")).all())
    raw = totp.decode_secret(secret)
    assert sealed.startswith("v1:") and secret not in sealed and raw.hex() not in sealed
    assert len(digests) == 10
    plain = {code.replace("-", "") for code in codes}
    assert not plain & set(digests)
    assert all(len(d) == 64 for d in digests)
    # The check value tells a wrong key from the right one, and nothing of the key.
    key = (ctx.settings.data_dir / totp_key.KEY_FILE).read_text().strip()
    assert settings[totp_key.CHECK_SETTING] not in key


def test_key_file_is_private_and_made_once(ctx: Context) -> None:
    """The key file is 0600 and is not replaced by a later enrolment."""
    two_factor.start_enrolment(ctx, HOST, ADMIN)
    path = ctx.settings.data_dir / totp_key.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    two_factor.start_enrolment(ctx, HOST, ADMIN)
    assert path.read_bytes() == before
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".totp-")]


def test_missing_or_other_key_is_refused_clearly(ctx: Context, settings: Settings) -> None:
    """A server without the key file, or with another key, refuses; it makes no new key."""
    secret, _ = _enrolled(ctx)
    path = ctx.settings.data_dir / totp_key.KEY_FILE
    kept = path.read_bytes()
    os.unlink(path)
    with pytest.raises(HostStateError, match="no two-factor key"):
        _login(ctx, _code(secret, 1))
    admins.create_admin(ctx, HOST, "second", "another password 1")
    with pytest.raises(HostStateError, match="no two-factor key"):
        two_factor.start_enrolment(ctx, HOST, "second")
    assert not path.exists()
    other = Context.from_settings(
        settings.model_copy(update={"totp_key": SecretStr("A" * 43 + "=")})  # 32 zero bytes
    )
    try:
        with pytest.raises(HostStateError, match="not the one"):
            auth.login_with_code(other, ADMIN, ADMIN_PASSWORD, ADDRESS, None, _code(secret, 1))
    finally:
        other.close()
    path.write_bytes(kept)
    assert _login(ctx, _code(secret, 1)).token


def test_configured_key_is_used_instead_of_a_file(settings: Settings, ctx: Context) -> None:
    """With MAILCTL_TOTP_KEY set, no key file is made; a malformed key is refused."""
    import base64

    key = base64.b64encode(bytes(range(32))).decode()
    keyed = Context.from_settings(settings.model_copy(update={"totp_key": SecretStr(key)}))
    bad = Context.from_settings(settings.model_copy(update={"totp_key": SecretStr("short")}))
    try:
        secret, _ = _enrolled(keyed)
        assert not (settings.data_dir / totp_key.KEY_FILE).exists()
        assert auth.login_with_code(keyed, ADMIN, ADMIN_PASSWORD, ADDRESS, None, _code(secret, 1))
        admins.create_admin(ctx, HOST, "second", "another password 1")
        with pytest.raises(HostStateError, match="32 bytes"):
            two_factor.start_enrolment(bad, HOST, "second")
    finally:
        keyed.close()
        bad.close()


def test_turn_off_needs_password_or_code(ctx: Context) -> None:
    """Turning off with a wrong password is a failed login; the right one turns it off."""
    secret, _ = _enrolled(ctx)
    me = Actor(ADMIN, ADDRESS)
    with ctx.uow() as uow:
        admin_id = uow.admins.by_username(ADMIN).id  # type: ignore[union-attr]
    with pytest.raises(InvalidInputError):
        two_factor.turn_off(ctx, me, admin_id, None, None)
    with pytest.raises(AuthError, match="password is not correct"):
        two_factor.turn_off(ctx, me, admin_id, "wrong", None)
    with pytest.raises(AuthError, match="not correct"):
        two_factor.turn_off(ctx, me, admin_id, None, _wrong(secret))
    two_factor.turn_off(ctx, me, admin_id, ADMIN_PASSWORD, None)
    assert not two_factor.state(ctx, ADMIN).enrolled
    assert _login(ctx).token
    with pytest.raises(NotFoundError):
        two_factor.turn_off(ctx, me, admin_id, ADMIN_PASSWORD, None)
    secret, _ = _enrolled(ctx)
    two_factor.turn_off(ctx, me, admin_id, None, _code(secret, 1))
    assert not two_factor.state(ctx, ADMIN).enrolled


def test_policy_gives_unenrolled_admins_an_enrolment_token(ctx: Context) -> None:
    """Required: an admin without a second factor logs in for a token that may only enrol;
    once enrolled, its logins need codes; it cannot turn the second factor off."""
    missing = two_factor.set_required(ctx, HOST, True)
    assert missing == [ADMIN]
    done = _login(ctx)
    assert done.enrol_only
    identity = auth.authenticate(ctx, done.token)
    assert identity.enrol_only
    assert two_factor.state(ctx, ADMIN).required
    secret, _ = _enrolled(ctx)
    assert two_factor.set_required(ctx, HOST, True) == []
    with pytest.raises(SecondFactorError):
        _login(ctx)
    full = _login(ctx, _code(secret, 1))
    assert not full.enrol_only
    assert not auth.authenticate(ctx, full.token).enrol_only
    with ctx.uow() as uow:
        admin_id = uow.admins.by_username(ADMIN).id  # type: ignore[union-attr]
    with pytest.raises(ConflictError, match="required"):
        two_factor.turn_off(ctx, Actor(ADMIN, ADDRESS), admin_id, ADMIN_PASSWORD, None)
    two_factor.set_required(ctx, HOST, False)
    assert not two_factor.state(ctx, ADMIN).required


def test_reset_and_policy_are_for_superadmins(ctx: Context) -> None:
    """A domain admin may neither reset another admin's second factor nor set the policy;
    a superadmin's reset lets the admin log in with its password again."""
    _enrolled(ctx)
    domain_admin = Actor("helper", ADDRESS, Scope(role=DOMAIN_ADMIN, domains={}))
    with pytest.raises(ForbiddenError):
        two_factor.remove(ctx, domain_admin, ADMIN)
    with pytest.raises(ForbiddenError):
        two_factor.set_required(ctx, domain_admin, True)
    superadmin = Actor("boss", ADDRESS, Scope())
    assert two_factor.remove(ctx, superadmin, ADMIN) is True
    assert two_factor.remove(ctx, superadmin, ADMIN) is False
    assert _login(ctx).token
    with pytest.raises(NotFoundError):
        two_factor.remove(ctx, superadmin, "nobody")


def test_deleting_an_admin_drops_its_second_factor(ctx: Context) -> None:
    """The rows of a deleted admin go with it (foreign keys cascade on every backend)."""
    admins.create_admin(ctx, HOST, "second", "another password 1")
    _enrolled(ctx, "second")
    admins.delete_admin(ctx, HOST, "second")
    with ctx.database.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM admin_totp")).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*) FROM admin_recovery_codes")).scalar_one() == 0


def test_audit_names_every_change_without_secrets(ctx: Context) -> None:
    """Each change is in the audit log; no entry holds the secret or a code."""
    secret, codes = _enrolled(ctx)
    two_factor.set_required(ctx, HOST, True)
    two_factor.remove(ctx, HOST, ADMIN)
    with ctx.uow() as uow:
        entries = [(e.action, e.target, e.detail or "") for e in uow.audit.recent(10)]
    actions = [action for action, _, _ in entries]
    for wanted in ("start_totp", "confirm_totp", "set_totp_policy", "reset_totp"):
        assert wanted in actions
    shown = " ".join(f"{t} {d}" for _, t, d in entries)
    assert secret not in shown
    assert not any(code in shown or code.replace("-", "") in shown for code in codes)


def test_wrong_codes_are_throttled_missing_ones_are_not(settings: Settings, ctx: Context) -> None:
    """Asking without a code costs nothing against the limit; wrong codes count like wrong
    passwords, and a right password without a code does not start their count afresh."""
    strict = Context.from_settings(settings.model_copy(update={"login_max_failures": 3}))
    try:
        secret, _ = _enrolled(strict)
        for _ in range(5):
            with pytest.raises(SecondFactorError, match="field 'code'"):
                _login(strict)
        for _ in range(2):
            with pytest.raises(SecondFactorError, match="not correct"):
                _login(strict, _wrong(secret))
        with pytest.raises(SecondFactorError, match="field 'code'"):
            _login(strict)
        with pytest.raises(SecondFactorError, match="not correct"):
            _login(strict, _wrong(secret))
        with pytest.raises(ThrottledError):
            _login(strict, _code(secret, 1))
    finally:
        strict.close()

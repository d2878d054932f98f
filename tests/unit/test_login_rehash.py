"""A login upgrades an admin's weaker stored hash; the dummy hash belongs to its context."""

from __future__ import annotations

import pytest
from argon2.low_level import Type, hash_secret
from tests.conftest import ADMIN, ADMIN_PASSWORD

from mailctl.domain.passwords import hash_password, needs_rehash, scheme_of, verify_password
from mailctl.errors import AuthError
from mailctl.services import auth
from mailctl.services.context import Context

ADDRESS = "192.0.2.10"


def _store(ctx: Context, stored: str) -> None:
    """Put ``stored`` in the admin's row, as a migration from another system would."""
    with ctx.uow() as uow:
        admin = uow.admins.by_username(ADMIN)
        assert admin is not None
        admin.password = stored
        uow.commit()


def _stored(ctx: Context) -> str:
    with ctx.uow() as uow:
        admin = uow.admins.by_username(ADMIN)
        assert admin is not None
        return admin.password


def _weak_argon2id(plain: str) -> str:
    """An Argon2id row of 8 MiB and one pass: valid, but below what mailctl makes now."""
    raw = hash_secret(
        plain.encode(),
        b"0123456789abcdef",
        time_cost=1,
        memory_cost=8 * 1024,
        parallelism=1,
        hash_len=32,
        type=Type.ID,
    )
    return "{ARGON2ID}" + raw.decode()


@pytest.mark.production_hashing  # "weaker" is measured against what a real server makes
@pytest.mark.parametrize("weaker", ["sha512", "argon2id"])
def test_a_login_replaces_a_weaker_hash_and_keeps_tokens(ctx: Context, weaker: str) -> None:
    """After a login, a SHA512-CRYPT or cheap Argon2id row holds a current Argon2id hash."""
    old = (
        hash_password(ADMIN_PASSWORD, "SHA512-CRYPT")
        if weaker == "sha512"
        else _weak_argon2id(ADMIN_PASSWORD)
    )
    _store(ctx, old)
    token = auth.login(ctx, ADMIN, ADMIN_PASSWORD, ADDRESS)

    fresh = _stored(ctx)
    assert fresh != old
    assert scheme_of(fresh) == "ARGON2ID"
    assert not needs_rehash(fresh)
    assert verify_password(ADMIN_PASSWORD, fresh)
    # The password is the same, so the token won with it is still good, and so is the next.
    assert auth.authenticate(ctx, token).username == ADMIN
    auth.login(ctx, ADMIN, ADMIN_PASSWORD, ADDRESS)
    assert _stored(ctx) == fresh


def test_a_current_hash_is_left_alone(ctx: Context) -> None:
    """A row that needs no rehash is not rewritten by a login."""
    before = _stored(ctx)
    assert not needs_rehash(before)
    auth.login(ctx, ADMIN, ADMIN_PASSWORD, ADDRESS)
    assert _stored(ctx) == before


def test_a_failed_login_does_not_touch_a_weaker_hash(ctx: Context) -> None:
    """A wrong password leaves the row as it was: only a proven password is rehashed."""
    old = hash_password(ADMIN_PASSWORD, "SHA512-CRYPT")
    _store(ctx, old)
    with pytest.raises(AuthError):
        auth.login(ctx, ADMIN, "not the password", ADDRESS)
    assert _stored(ctx) == old


def test_a_rehash_gives_way_to_a_password_changed_meanwhile(ctx: Context) -> None:
    """The new hash lands only where the checked one is still stored."""
    old = hash_password(ADMIN_PASSWORD, "SHA512-CRYPT")
    changed = hash_password("another password entirely")
    _store(ctx, changed)
    with ctx.uow() as uow:
        admin = uow.admins.by_username(ADMIN)
        assert admin is not None
        assert not uow.admins.rehash(admin.id, old, hash_password(ADMIN_PASSWORD))
        uow.commit()
    assert _stored(ctx) == changed


def test_each_context_keeps_its_own_dummy_hash(ctx: Context) -> None:
    """The hash an unknown username is checked against is made once per context."""
    with pytest.raises(AuthError, match=auth.BAD_CREDENTIALS):
        auth.login(ctx, "nobody", ADMIN_PASSWORD, ADDRESS)
    dummy = ctx.passwords.dummy_hash()
    assert ctx.passwords.dummy_hash() == dummy
    assert scheme_of(dummy) == "ARGON2ID"
    assert not verify_password(ADMIN_PASSWORD, dummy)
    other = Context.from_settings(ctx.settings)
    try:
        assert other.passwords.dummy_hash() != dummy  # salted afresh: not shared
    finally:
        other.close()

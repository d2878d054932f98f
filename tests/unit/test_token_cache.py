"""A token checked a moment ago needs no database; a revocation still takes effect at once."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from sqlalchemy import event
from tests.conftest import ADMIN

from mailctl.config import Settings
from mailctl.errors import AuthError
from mailctl.services import accounts, admins, auth
from mailctl.services.context import Actor, Context
from mailctl.storage.tables import AdminToken

# What these tests check does not depend on the database: once, on SQLite (tests/README.md).
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])
ACTOR = Actor("tester", "192.0.2.1")


def _token(ctx: Context) -> str:
    with ctx.uow() as uow:
        admin = uow.admins.by_username(ADMIN)
        assert admin is not None
        identity = auth.AdminIdentity(admin.id, admin.username)
    return auth.issue_token(ctx, identity)


def _other(settings: Settings, **changes: object) -> Iterator[Context]:
    other = Context.from_settings(settings.model_copy(update=changes))
    yield other
    other.close()


@pytest.fixture
def other(settings: Settings) -> Iterator[Context]:
    """A second process's context on the same data folder and database."""
    yield from _other(settings)


def _statements(ctx: Context) -> list[str]:
    seen: list[str] = []
    event.listen(ctx.database.engine, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


def _delete_row_behind_mailctls_back(ctx: Context, token: str) -> None:
    """As a revocation on another host that shares the database: no stamp on this host."""
    claims = auth.jwt.decode(token, options={"verify_signature": False})
    with ctx.uow() as uow:
        row = uow.session.get(AdminToken, claims["jti"])
        assert row is not None
        uow.session.delete(row)
        uow.commit()


def test_a_token_checked_a_moment_ago_is_accepted_without_the_database(ctx: Context) -> None:
    """The second request with a token the database accepted makes no query."""
    token = _token(ctx)
    assert auth.authenticate(ctx, token).username == ADMIN
    seen = _statements(ctx)
    assert auth.authenticate(ctx, token).username == ADMIN
    assert seen == []


@pytest.mark.parametrize(
    "revoke",
    [
        lambda c: accounts.revoke_all(c, ACTOR, ADMIN),
        lambda c: accounts.set_password(c, ACTOR, ADMIN, "a brand new password 1"),
        # (with a second superadmin: the last one cannot be deleted)
        lambda c: (
            admins.create_admin(c, ACTOR, "spare", "spare-password-1"),
            admins.delete_admin(c, ACTOR, ADMIN),
        ),
    ],
    ids=["revoke-all", "password-change", "admin-deleted"],
)
def test_a_revocation_by_another_process_is_refused_at_once(
    ctx: Context, other: Context, revoke
) -> None:  # type: ignore[no-untyped-def]
    """This process trusted the token a moment ago; another process on the host revokes
    it (a CLI command, another worker); the next check here refuses it."""
    token = _token(ctx)
    assert auth.authenticate(ctx, token).username == ADMIN
    revoke(other)
    with pytest.raises(AuthError):
        auth.authenticate(ctx, token)


def test_logging_out_refuses_the_token_at_once_in_this_process(ctx: Context) -> None:
    """A logout through this process refuses the token on its next use here."""
    token = _token(ctx)
    identity = auth.authenticate(ctx, token)
    accounts.logout(ctx, identity, None)
    with pytest.raises(AuthError, match="logged out"):
        auth.authenticate(ctx, token)


def test_a_revocation_elsewhere_is_seen_within_the_cache_time(
    ctx: Context, settings: Settings
) -> None:
    """A row removed behind this host's back (another host's revocation) is refused once
    the cache time has passed; with 0 it is refused at once."""
    for short in _other(settings, token_cache_seconds=0.3):
        token = _token(short)
        assert auth.authenticate(short, token).username == ADMIN
        _delete_row_behind_mailctls_back(short, token)
        assert auth.authenticate(short, token).username == ADMIN
        time.sleep(0.35)
        with pytest.raises(AuthError):
            auth.authenticate(short, token)
    for uncached in _other(settings, token_cache_seconds=0):
        token = _token(uncached)
        assert auth.authenticate(uncached, token).username == ADMIN
        _delete_row_behind_mailctls_back(uncached, token)
        with pytest.raises(AuthError):
            auth.authenticate(uncached, token)


def test_an_answer_checked_across_a_revocation_is_not_kept(ctx: Context, other: Context) -> None:
    """A check that started before a revocation committed is not remembered: the next
    request checks the database again."""
    token = _token(ctx)
    seen = ctx.tokens.snapshot()
    accounts.revoke_all(other, ACTOR, ADMIN)
    ctx.tokens.put(token, auth.AdminIdentity(1, ADMIN, "x"), time.time() + 60, seen)
    with pytest.raises(AuthError):
        auth.authenticate(ctx, token)


def test_an_expired_token_is_not_served_from_the_cache(ctx: Context) -> None:
    """An entry lives no longer than the token's own expiry."""
    identity = auth.AdminIdentity(1, ADMIN, "x")
    ctx.tokens.put("some-token", identity, time.time() + 0.2, ctx.tokens.snapshot())
    assert ctx.tokens.get("some-token") == identity
    time.sleep(0.25)
    assert ctx.tokens.get("some-token") is None

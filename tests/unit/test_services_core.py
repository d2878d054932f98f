"""The domain and mailbox use cases, called directly as the API and CLI call them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from sqlalchemy import event

from mailctl.api.app import create_app
from mailctl.config import Settings
from mailctl.domain.passwords import verify_password
from mailctl.errors import HostStateError, UnavailableError
from mailctl.services import auth, domains, mailboxes
from mailctl.services.context import Actor, Context
from mailctl.storage import reads

ACTOR = Actor("tester", "192.0.2.1")


def test_users_count_is_one_query(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing domains with their mailbox counts costs one SELECT, whatever their number."""
    for n in range(5):
        view, _ = domains.create_domain(ctx, ACTOR, f"d{n}.example")
        for m in range(n):
            mailboxes.create_user(ctx, ACTOR, view.id, f"u{m}@d{n}.example", "pw-123456")
    statements: list[str] = []

    def count(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    # Listings run on the driver's cursor (storage.reads), past SQLAlchemy's events.
    run = reads.Reads._rows

    def counted(self, name, build, shape, params):  # type: ignore[no-untyped-def]
        statements.append(name)
        return run(self, name, build, shape, params)

    monkeypatch.setattr(reads.Reads, "_rows", counted)
    event.listen(ctx.database.engine, "before_cursor_execute", count)
    try:
        listed = domains.list_domains(ctx)
    finally:
        event.remove(ctx.database.engine, "before_cursor_execute", count)
    assert [(d.name, d.users_count) for d in listed] == [(f"d{n}.example", n) for n in range(5)]
    assert len(statements) == 1


def test_failed_maildir_creation_leaves_no_rows(ctx: Context) -> None:
    """If the maildir cannot be made, the domain and mailbox are not created either."""
    root = ctx.settings.mail_root_path
    root.mkdir(parents=True, exist_ok=True)
    (root / "example.com").write_text("a file where the domain folder should be")
    with pytest.raises(HostStateError):
        domains.create_domain(ctx, ACTOR, "example.com", "a@example.com", "pw-123456")
    assert domains.list_domains(ctx) == []


def test_failed_commit_puts_maildir_back(ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the database refuses a delete, the maildir returns from the trash untouched."""
    view, _ = domains.create_domain(ctx, ACTOR, "example.com", "a@example.com", "pw-123456")
    message = ctx.settings.mail_root_path / "example.com" / "a" / "new" / "1"
    message.write_bytes(b"mail")

    from mailctl.storage.uow import UnitOfWork

    def refuse(self: UnitOfWork) -> None:
        raise UnavailableError("The database is unavailable; try again shortly.")

    monkeypatch.setattr(UnitOfWork, "commit", refuse)
    with pytest.raises(UnavailableError):
        mailboxes.delete_user(ctx, ACTOR, "a@example.com")
    monkeypatch.undo()
    assert message.read_bytes() == b"mail"
    assert [u.email for u in mailboxes.list_users(ctx, view.id)] == ["a@example.com"]
    assert not any(ctx.settings.trash_path.iterdir())


def test_password_scheme_setting(settings: Settings) -> None:
    """MAILCTL_PASSWORD_SCHEME picks the scheme new mailbox passwords are stored with."""
    settings.password_scheme = "SHA512-CRYPT"
    context = Context.from_settings(settings)
    auth.initialize(context, "admin", "admin-password")
    _view, user = domains.create_domain(context, ACTOR, "example.com", "a", "pw-123456")
    assert user is not None
    with context.uow() as uow:
        row = uow.users.by_email("a@example.com")
        assert row is not None
        assert row.password.startswith("{SHA512-CRYPT}$6$")
        assert verify_password("pw-123456", row.password)
    context.close()


def test_old_md5_rows_are_rehashed_on_change(ctx: Context) -> None:
    """A mailbox migrated with an MD5-CRYPT hash gets the current scheme on a password change."""
    view, _ = domains.create_domain(ctx, ACTOR, "example.com")
    user = mailboxes.create_user(ctx, ACTOR, view.id, "a@example.com", "pw-123456")
    with ctx.uow() as uow:
        row = uow.users.get(user.id)
        assert row is not None
        row.password = "{MD5-CRYPT}$1$saltsalt$" + "x" * 22
        uow.commit()
    mailboxes.change_password(ctx, ACTOR, user.id, "new-password", view.id)
    with ctx.uow() as uow:
        row = uow.users.get(user.id)
        assert row is not None
        assert row.password.startswith("{ARGON2ID}")
        assert verify_password("new-password", row.password)


def test_audit_rows_carry_actor(ctx: Context) -> None:
    """The audit log names the acting admin and its address for every change."""
    view, _ = domains.create_domain(ctx, ACTOR, "example.com")
    user = mailboxes.create_user(ctx, ACTOR, view.id, "a@example.com", "pw-123456")
    mailboxes.change_password(ctx, ACTOR, user.id, "pw-654321", view.id)
    mailboxes.delete_user(ctx, ACTOR, "a@example.com")
    with ctx.uow() as uow:
        rows = [(e.action, e.target, e.admin, e.client_address) for e in uow.audit.recent()]
    assert rows[:4] == [
        ("delete_user", "a@example.com", "tester", "192.0.2.1"),
        ("change_password", "a@example.com", "tester", "192.0.2.1"),
        ("create_user", "a@example.com", "tester", "192.0.2.1"),
        ("create_domain", "example.com", "tester", "192.0.2.1"),
    ]


def test_database_down_is_503(tmp_path: Path) -> None:
    """With the database unreachable, calls answer 503 with a JSON message, not a 500."""
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://postgres@127.0.0.1:1/none",
        jwt_secret="a-test-secret-that-is-long-enough-for-hs256",
    )
    context = Context.from_settings(settings)
    now = datetime.now(UTC)
    claims = {"sub": "1", "username": "admin", "iat": now, "exp": now + timedelta(minutes=5)}
    token = jwt.encode(claims, auth.jwt_secret(context), algorithm=auth.JWT_ALGORITHM)
    transport = httpx.ASGITransport(app=create_app(ctx=context))

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/domains", headers={"Auth-token": token})

    response = asyncio.run(call())
    assert response.status_code == 503
    assert response.json() == {
        "result": False,
        "msg": "The database is unavailable; try again shortly.",
    }

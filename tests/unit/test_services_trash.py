"""The trash: restore a deleted mailbox or domain whole, purge only old entries, refuse bad ids."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailctl.domain.dkim import generate_key
from mailctl.domain.passwords import verify_password
from mailctl.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    UnavailableError,
)
from mailctl.services import domains, mailboxes, trash
from mailctl.services.context import Actor, Context
from mailctl.storage.uow import UnitOfWork

ACTOR = Actor("tester", "192.0.2.1")
MESSAGE = "cur/1700000000.M1P1.host,S=5:2,S"


def _domain_with_mail(ctx: Context) -> dict[str, str]:
    """example.com with alice (mail in cur/ and a folder), an alias and a DKIM key."""
    view, _ = domains.create_domain(ctx, ACTOR, "example.com", "alice@example.com", "alice-pw-1")
    key = generate_key("ed25519")
    with ctx.uow() as uow:
        uow.aliases.add(view.id, "postmaster@example.com", "alice@example.com")
        uow.dkim_keys.add(view.id, "mail", "ed25519", key)
        uow.commit()
        user = uow.users.by_email("alice@example.com")
        assert user is not None
        stored = user.password
    alice = ctx.maildirs.mailbox_path("example.com", "alice")
    (alice / MESSAGE).write_bytes(b"hello")
    (alice / ".Sent" / "cur").mkdir(parents=True)
    (alice / ".Sent" / "cur" / "sent:2,S").write_bytes(b"sent")
    return {"hash": stored, "key": key}


def _only_item(ctx: Context) -> trash.TrashItem:
    items = trash.list_trash(ctx)
    assert len(items) == 1
    return items[0]


def test_restore_mailbox_brings_back_row_hash_and_mail(ctx: Context) -> None:
    """A deleted mailbox comes back with the same password hash and every file."""
    stored = _domain_with_mail(ctx)["hash"]
    mailboxes.delete_user(ctx, ACTOR, "alice@example.com")
    alice = ctx.maildirs.mailbox_path("example.com", "alice")
    assert not alice.exists()
    item = _only_item(ctx)
    assert (item.kind, item.target, item.has_data, item.mailboxes) == (
        "mailbox",
        "alice@example.com",
        True,
        1,
    )
    restored = trash.restore(ctx, ACTOR, item.id)
    assert (restored.kind, restored.target) == ("mailbox", "alice@example.com")
    with ctx.uow() as uow:
        user = uow.users.by_email("alice@example.com")
        assert user is not None
        assert user.password == stored
    assert verify_password("alice-pw-1", stored)
    assert (alice / MESSAGE).read_bytes() == b"hello"
    assert (alice / ".Sent" / "cur" / "sent:2,S").read_bytes() == b"sent"
    assert trash.list_trash(ctx) == []


def test_restore_domain_whole(ctx: Context) -> None:
    """A deleted domain comes back with mailboxes, alias, DKIM key (active) and mail."""
    made = _domain_with_mail(ctx)
    changes: list[str] = []
    ctx.change_listeners.append(changes.append)
    domains.delete_domain(ctx, ACTOR, "example.com")
    item = _only_item(ctx)
    assert (item.kind, item.target, item.mailboxes) == ("domain", "example.com", 1)
    restored = trash.restore(ctx, ACTOR, item.id)
    assert (restored.mailboxes, restored.aliases, restored.dkim_keys) == (1, 1, 1)
    with ctx.uow() as uow:
        domain = uow.domains.by_name("example.com")
        assert domain is not None
        users = [(u.email, u.password) for u in uow.users.list_for_domain(domain.id)]
        aliases = [(a.source, a.destination) for a in uow.aliases.list_for_domain(domain.id)]
        keys = [(k.selector, k.private_key, k.active) for k in uow.dkim_keys.for_domain(domain.id)]
    assert users == [("alice@example.com", made["hash"])]
    assert aliases == [("postmaster@example.com", "alice@example.com")]
    assert keys == [("mail", made["key"], True)]
    alice = ctx.maildirs.mailbox_path("example.com", "alice")
    assert (alice / MESSAGE).read_bytes() == b"hello"
    assert "dkim" in changes
    assert trash.list_trash(ctx) == []


def test_restore_refuses_what_exists_again(ctx: Context) -> None:
    """A mailbox or domain that exists again is a 409; a mailbox without its domain a 404."""
    _domain_with_mail(ctx)
    mailboxes.delete_user(ctx, ACTOR, "alice@example.com")
    mailbox_id = _only_item(ctx).id
    with ctx.uow() as uow:
        domain = uow.domains.by_name("example.com")
        assert domain is not None
        domain_id = domain.id
    mailboxes.create_user(ctx, ACTOR, domain_id, "alice@example.com", "new-pass-1")
    with pytest.raises(ConflictError, match="exists again"):
        trash.restore(ctx, ACTOR, mailbox_id)
    domains.delete_domain(ctx, ACTOR, "example.com")
    with pytest.raises(NotFoundError, match="restore or create it"):
        trash.restore(ctx, ACTOR, mailbox_id)
    domains.create_domain(ctx, ACTOR, "example.com")
    domain_entry = next(i for i in trash.list_trash(ctx) if i.kind == "domain")
    with pytest.raises(ConflictError, match="exists again"):
        trash.restore(ctx, ACTOR, domain_entry.id)
    assert {i.id for i in trash.list_trash(ctx)} == {mailbox_id, domain_entry.id}
    data = ctx.settings.trash_path / mailbox_id / "data"
    assert (data / MESSAGE).read_bytes() == b"hello"


def test_restore_puts_mail_back_in_trash_when_commit_fails(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the database refuses the restore, the mail goes back to the trash and no row stays."""
    _domain_with_mail(ctx)
    domains.delete_domain(ctx, ACTOR, "example.com")
    entry = _only_item(ctx).id

    def refuse(_self: UnitOfWork) -> None:
        raise UnavailableError("The database is unavailable.")

    monkeypatch.setattr(UnitOfWork, "commit", refuse)
    with pytest.raises(UnavailableError):
        trash.restore(ctx, ACTOR, entry)
    monkeypatch.undo()
    with ctx.uow() as uow:
        assert uow.domains.by_name("example.com") is None
    assert not ctx.maildirs.domain_path("example.com").exists()
    data = ctx.settings.trash_path / entry / "data" / "alice"
    assert (data / MESSAGE).read_bytes() == b"hello"


def _age(ctx: Context, entry_id: str, days: int) -> None:
    path = ctx.settings.trash_path / entry_id / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["deleted_at"] = (datetime.now(UTC) - timedelta(days=days)).isoformat()
    path.write_text(json.dumps(manifest))


def test_purge_removes_only_entries_past_retention(ctx: Context) -> None:
    """purge deletes entries older than the retention (30 days) and keeps the recent ones."""
    view, _ = domains.create_domain(ctx, ACTOR, "example.com", "old@example.com", "old-pass-1")
    mailboxes.create_user(ctx, ACTOR, view.id, "new@example.com", "new-pass-1")
    mailboxes.delete_user(ctx, ACTOR, "old@example.com")
    mailboxes.delete_user(ctx, ACTOR, "new@example.com")
    ids = {i.target: i.id for i in trash.list_trash(ctx)}
    _age(ctx, ids["old@example.com"], 31)
    _age(ctx, ids["new@example.com"], 29)
    nameless = ctx.settings.trash_path / "broken-entry"
    nameless.mkdir()
    old = (datetime.now(UTC) - timedelta(days=40)).timestamp()
    os.utime(nameless, (old, old))
    purged = trash.purge(ctx)
    assert sorted(i.id for i in purged) == sorted([ids["old@example.com"], "broken-entry"])
    assert [i.target for i in trash.list_trash(ctx)] == ["new@example.com"]
    assert trash.purge(ctx, older_than_days=30) == []
    assert [i.target for i in trash.purge(ctx, older_than_days=7)] == ["new@example.com"]
    assert trash.list_trash(ctx) == []


def test_purge_by_id_never_follows_symlinks(ctx: Context, tmp_path: Path) -> None:
    """Purging one entry deletes it even when recent; a symlink inside keeps its target."""
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep").write_bytes(b"keep")
    domains.create_domain(ctx, ACTOR, "example.com", "a@example.com", "a-pass-123")
    mailboxes.delete_user(ctx, ACTOR, "a@example.com")
    entry = _only_item(ctx).id
    (ctx.settings.trash_path / entry / "data" / "cur" / "link").symlink_to(precious)
    assert trash.purge(ctx, older_than_days=30) == []
    assert [i.id for i in trash.purge(ctx, trash_id=entry)] == [entry]
    assert not (ctx.settings.trash_path / entry).exists()
    assert (precious / "keep").read_bytes() == b"keep"


def test_hostile_trash_ids_are_refused(ctx: Context) -> None:
    """Trash ids are bare folder names: paths, dot names and NULs are refused as bad input."""
    for bad in ["../x", "a/b", ".", "..", "", ".hidden", "a\x00b", "x" * 300]:
        with pytest.raises(InvalidInputError, match="is not a trash id"):
            trash.restore(ctx, ACTOR, bad)
        with pytest.raises(InvalidInputError, match="is not a trash id"):
            trash.purge(ctx, trash_id=bad)


def test_symlinked_trash_entry_is_not_an_entry(ctx: Context, tmp_path: Path) -> None:
    """A symlink planted in the trash is neither listed, restored nor purged."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "manifest.json").write_text('{"kind": "domain", "target": "x.example"}')
    ctx.settings.trash_path.mkdir(parents=True, exist_ok=True)
    (ctx.settings.trash_path / "planted").symlink_to(outside)
    assert trash.list_trash(ctx) == []
    with pytest.raises(NotFoundError):
        trash.purge(ctx, trash_id="planted")
    with pytest.raises(NotFoundError):
        trash.restore(ctx, ACTOR, "missing-entry")
    assert (outside / "manifest.json").exists()

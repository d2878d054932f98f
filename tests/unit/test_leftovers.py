"""The start-up clean-up settles what killed operations left, and nothing a live one holds."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from mailctl.host.fs import held_temp_dir, held_temp_file
from mailctl.services import domains, leftovers, mailboxes, trash
from mailctl.services.context import Actor, Context

ACTOR = Actor("test")


def _lines(report: leftovers.Cleanup) -> list[str]:
    return [item.line() for item in report.items]


@pytest.mark.security(
    finding=6,
    claim="Scratch files of a dead import or export are removed at start, a live one's kept.",
)
def test_dead_scratch_goes_live_scratch_stays(ctx: Context, figure) -> None:  # type: ignore[no-untyped-def]
    """Unlocked uploads, staging folders and .tmp files go; locked ones stay, logged as kept."""
    imports = ctx.settings.data_dir / "imports"
    imports.mkdir(parents=True)
    dead_upload = imports / "upload-dead1234.tar.gz"
    dead_upload.write_bytes(b"x" * 5000)
    dead_staging = imports / "staging-dead5678"
    (dead_staging / "example.com" / "cur").mkdir(parents=True)
    (dead_staging / "example.com" / "cur" / "1.mail").write_bytes(b"y" * 3000)
    live_fd, live_staging = held_temp_dir(imports, "staging-")
    exports = ctx.settings.archive_path
    exports.mkdir(parents=True)
    dead_tmp = exports / ".example.com-20260101T000000Z.tar.gz.ab_cd123.tmp"
    dead_tmp.write_bytes(b"z" * 100)
    keep = exports / "example.com-20260101T000000Z.tar.gz"
    keep.write_bytes(b"a finished export")
    live_tmp_fd, live_tmp = held_temp_file(exports, ".other.tar.gz.", ".tmp")
    try:
        report = leftovers.clean_up(ctx)
        assert not dead_upload.exists() and not dead_staging.exists() and not dead_tmp.exists()
        assert live_staging.is_dir() and live_tmp.exists() and keep.exists()
        lines = _lines(report)
        assert any(
            line.startswith(f"removed the upload of an import {dead_upload}") for line in lines
        )
        assert any(
            line.startswith(f"removed the staging folder of an import {dead_staging}")
            for line in lines
        )
        assert any(
            line.startswith(f"kept the staging folder of an import {live_staging}")
            for line in lines
        )
        assert any(
            line.startswith(f"kept the temporary file of an export {live_tmp}") for line in lines
        )
        assert report.removed_bytes == 5000 + 3000 + 100
        figure("bytes removed", report.removed_bytes)
    finally:
        os.close(live_fd)
        os.close(live_tmp_fd)
    # Once its owner is gone, the next clean-up takes it.
    again = leftovers.clean_up(ctx)
    assert not live_staging.exists() and not live_tmp.exists()
    assert len(again.items) == 2


def test_scratch_of_an_owner_gone_goes(ctx: Context) -> None:
    """A scratch file whose owner closed it without removing it (as if killed) goes."""
    directory = ctx.settings.data_dir
    directory.mkdir(parents=True, exist_ok=True)
    fd, path = held_temp_file(directory, ".x.", ".tmp")
    os.close(fd)
    assert path.exists()
    leftovers.clean_up(ctx)
    assert not path.exists()


@pytest.mark.security(
    finding=6,
    claim="A maildir left without its mailbox is removed if empty, "
    "moved to the trash if it holds mail.",
)
def test_maildirs_without_rows(ctx: Context) -> None:
    """Empty skeletons go, maildirs with mail go to the trash, maildirs with a row stay."""
    _view, user = domains.create_domain(
        ctx, ACTOR, "example.com", "kept@example.com", "a long password"
    )
    assert user is not None
    kept = ctx.maildirs.mailbox_path("example.com", "kept")
    (kept / "new" / "1.mail").write_bytes(b"mail")
    empty = ctx.maildirs.create_mailbox("example.com", "empty")
    full = ctx.maildirs.create_mailbox("example.com", "full")
    (full / "cur" / "2.mail").write_bytes(b"mail of nobody")
    gone_domain = ctx.maildirs.create_mailbox("gone.example", "someone")
    report = leftovers.clean_up(ctx)
    lines = _lines(report)
    assert (kept / "new" / "1.mail").exists()
    assert not empty.exists() and not full.exists() and not gone_domain.parent.exists()
    assert any(
        line.startswith(f"removed the maildir of empty@example.com, which has no mailbox, {empty}")
        for line in lines
    )
    assert any(
        line.startswith(
            f"moved to the trash the maildir of full@example.com, which has no mailbox, {full}"
        )
        for line in lines
    )
    items = trash.list_trash(ctx)
    assert [(item.kind, item.target, item.has_data) for item in items] == [
        ("maildir", "full@example.com", True)
    ]
    with pytest.raises(Exception, match="without its mailbox"):
        trash.restore(ctx, ACTOR, items[0].id)
    assert leftovers.clean_up(ctx).items == []


def _pending(
    ctx: Context, kind: str, target: str, source: Path, manifest: dict[str, object]
) -> Path:
    entry = ctx.maildirs.move_to_trash(kind, target, source, manifest, pending=True)
    return entry.path


@pytest.mark.security(
    finding=6, claim="A delete killed before its commit is undone at start; its mail goes back."
)
def test_uncommitted_delete_is_undone(ctx: Context) -> None:
    """A pending trash folder whose rows still exist moves its mail back and disappears."""
    domains.create_domain(ctx, ACTOR, "example.com", "ann@example.com", "a long password")
    maildir = ctx.maildirs.mailbox_path("example.com", "ann")
    (maildir / "cur" / "1.mail").write_bytes(b"keep me")
    entry = _pending(ctx, "mailbox", "ann@example.com", maildir, {"domain": "example.com"})
    assert not maildir.exists()
    report = leftovers.clean_up(ctx)
    assert (maildir / "cur" / "1.mail").read_bytes() == b"keep me"
    assert not entry.exists()
    assert [item.action for item in report.items] == ["undone"]
    assert trash.list_trash(ctx) == []
    # The delete can be done again, once.
    mailboxes.delete_user(ctx, ACTOR, "ann@example.com")
    assert len(trash.list_trash(ctx)) == 1


def test_committed_delete_is_finished(ctx: Context) -> None:
    """A pending trash folder whose rows are gone becomes a normal trash entry."""
    domains.create_domain(ctx, ACTOR, "example.com", "ann@example.com", "a long password")
    domain_dir = ctx.maildirs.domain_path("example.com")
    view = domains.delete_domain(ctx, ACTOR, "example.com")
    settled = Path(view.path)
    # As if killed after the commit, before the folder was shown.
    pending = settled.parent / (".pending-" + settled.name)
    settled.rename(pending)
    assert trash.list_trash(ctx) == []
    report = leftovers.clean_up(ctx)
    assert [item.action for item in report.items] == ["finished"]
    assert [item.id for item in trash.list_trash(ctx)] == [settled.name]
    assert not domain_dir.exists()
    trash.restore(ctx, ACTOR, settled.name)
    assert domains.get_domain(ctx, "example.com").users_count == 1


def test_pending_folder_without_manifest_or_mail_goes(ctx: Context) -> None:
    """A delete killed right after making its trash folder leaves an empty one; it goes."""
    folder = ctx.maildirs.trash_root / ".pending-20260101T000000.000000Z-domain-x.example-abcd1234"
    folder.mkdir(parents=True)
    report = leftovers.clean_up(ctx)
    assert not folder.exists()
    assert [item.action for item in report.items] == ["removed"]


def test_manifest_comes_before_the_mail(ctx: Context) -> None:
    """A trash folder holding mail always has its manifest (it is written first)."""
    domains.create_domain(ctx, ACTOR, "example.com", "ann@example.com", "a long password")
    view = mailboxes.delete_user(ctx, ACTOR, "ann@example.com")
    manifest = json.loads((Path(view.path) / "manifest.json").read_text())
    assert manifest["has_data"] is True and manifest["kind"] == "mailbox"


@pytest.mark.security(
    finding=6,
    claim="A restore killed half-way converges at start: committed, or back in the trash.",
)
def test_interrupted_restores(ctx: Context) -> None:
    """Mail a restore took out of the trash goes back unless the restore was committed."""
    domains.create_domain(ctx, ACTOR, "example.com", "ann@example.com", "a long password")
    mailboxes.create_user(ctx, ACTOR, 1, "bob@example.com", "a long password")
    for name in ("ann", "bob"):
        mail = ctx.maildirs.mailbox_path("example.com", name) / "cur" / "1.mail"
        mail.write_bytes(name.encode())
    ann = Path(mailboxes.delete_user(ctx, ACTOR, "ann@example.com").path).name
    bob = Path(mailboxes.delete_user(ctx, ACTOR, "bob@example.com").path).name
    # ann: killed after taking her mail back, before the commit.
    ctx.maildirs.take_from_trash(
        ctx.maildirs.trash_entry(ann), ctx.maildirs.mailbox_path("example.com", "ann")
    )
    # bob: restored and committed, killed before the emptied folder was dropped.
    entry = ctx.maildirs.trash_entry(bob)
    trash.restore(ctx, ACTOR, bob)
    entry.path.mkdir()
    (entry.path / "manifest.json").write_text(json.dumps(entry.manifest))
    report = leftovers.clean_up(ctx)
    assert sorted(item.action for item in report.items) == ["removed", "undone"]
    assert [item.id for item in trash.list_trash(ctx)] == [ann]
    trash.restore(ctx, ACTOR, ann)
    for name in ("ann", "bob"):
        mail = ctx.maildirs.mailbox_path("example.com", name) / "cur" / "1.mail"
        assert mail.read_bytes() == name.encode()
    assert trash.list_trash(ctx) == []

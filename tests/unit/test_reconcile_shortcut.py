"""Reconcile's shortcut for an unchanged host still sees every change made behind its back."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from mailctl.host import state as host_state
from mailctl.services import dkim, domains
from mailctl.services.context import Actor, Context
from mailctl.services.reconcile import reconcile

# What is checked here is files on disk against the state recorded beside them; the
# database only holds the rows set up.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

ACTOR = Actor("tester", "192.0.2.7")


def _with_keys(ctx: Context, count: int) -> None:
    for index in range(count):
        name = f"d{index}.example"
        domains.create_domain(ctx, ACTOR, name)
        dkim.add_key(ctx, ACTOR, name, "s1", "ed25519")


def _settled(ctx: Context) -> None:
    """Reconcile until the record holds no racy entry: the shortcut is then taken."""
    for _ in range(100):
        assert not reconcile(ctx).changed
        known = host_state.load(ctx.settings.data_dir / host_state.STATE_NAME)
        assert known is not None
        if not known.racy_files and not known.racy_dirs:
            return
        # Let the filesystem's clock tick past the files' times.
        time.sleep(0.05)
    pytest.fail("the recorded state stayed racy")


def _key_file(ctx: Context, index: int = 0) -> Path:
    return ctx.settings.opendkim_path / "keys" / f"d{index}.example" / "s1.private"


def test_a_key_rewritten_in_place_with_its_old_size_and_mtime_is_put_back(ctx: Context) -> None:
    """Same size, mtime set back: the ctime still tells, and the key is rewritten."""
    _with_keys(ctx, 2)
    _settled(ctx)
    key = _key_file(ctx)
    good = key.read_bytes()
    before = key.stat()
    key.write_bytes(good.replace(b"A", b"B", 1) if b"A" in good else good[::-1])
    os.utime(key, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert key.stat().st_size == before.st_size

    report = reconcile(ctx)
    assert report.written == [str(key)]
    assert key.read_bytes() == good
    assert not reconcile(ctx).changed


def test_a_file_planted_in_a_key_folder_is_removed(ctx: Context) -> None:
    """A stray file in a managed folder is deleted, as a full comparison would."""
    _with_keys(ctx, 2)
    _settled(ctx)
    stray = _key_file(ctx).parent / "old.private"
    stray.write_text("left behind\n")

    assert reconcile(ctx).deleted == [str(stray)]
    assert not stray.exists()


def test_a_folder_planted_in_the_key_folder_is_looked_into(ctx: Context) -> None:
    """A new folder changes its parent's times: its files are found and deleted, also
    when a database change makes the run compare (and trust unchanged folders)."""
    _with_keys(ctx, 3)
    _settled(ctx)
    stray = ctx.settings.opendkim_path / "keys" / "d1.example" / "sub" / "old.private"
    stray.parent.mkdir()
    stray.write_text("left behind\n")
    dkim.add_key(ctx, ACTOR, "d2.example", "s2", "ed25519", rotate=True)

    assert not stray.exists()
    assert not reconcile(ctx).changed


def test_a_key_edited_after_a_run_that_wrote_another_is_put_back(ctx: Context) -> None:
    """The record of a run that wrote one key still vouches for the others only by their
    lstat: one edited afterwards, its mtime set back, is rewritten by the next run."""
    _with_keys(ctx, 3)
    _settled(ctx)
    dkim.add_key(ctx, ACTOR, "d2.example", "s2", "ed25519", rotate=True)
    _settled(ctx)
    key = _key_file(ctx, 1)
    good = key.read_bytes()
    before = key.stat()
    key.write_bytes(good[::-1])
    os.utime(key, ns=(before.st_atime_ns, before.st_mtime_ns))

    assert reconcile(ctx).written == [str(key)]
    assert key.read_bytes() == good


def test_a_mode_changed_behind_its_back_is_set_back(ctx: Context) -> None:
    """chmod changes only the ctime and mode: the key is made private again."""
    _with_keys(ctx, 1)
    _settled(ctx)
    key = _key_file(ctx)
    key.chmod(0o644)

    assert reconcile(ctx).written == [str(key)]
    assert key.stat().st_mode & 0o777 == 0o600


def test_a_removed_table_is_written_again(ctx: Context) -> None:
    """A file removed by hand is missing from disk, so the run is not a no-op."""
    _with_keys(ctx, 1)
    _settled(ctx)
    table = ctx.settings.opendkim_path / "KeyTable"
    table.unlink()

    assert reconcile(ctx).written == [str(table)]
    assert "d0.example:s1:" in table.read_text()


def test_a_key_changed_in_the_database_is_written(ctx: Context) -> None:
    """New rows mean new inputs: the shortcut is not taken, and the new key lands."""
    _with_keys(ctx, 1)
    _settled(ctx)
    dkim.add_key(ctx, ACTOR, "d0.example", "s2", "ed25519", rotate=True)

    assert "d0.example:s2:" in (ctx.settings.opendkim_path / "KeyTable").read_text()
    assert not _key_file(ctx).exists()


@pytest.mark.parametrize("damage", ["garbage", "old version", "missing"])
def test_a_damaged_record_only_costs_the_shortcut(ctx: Context, damage: str) -> None:
    """A record that cannot be read makes the run compare every file: the key is put back."""
    _with_keys(ctx, 1)
    _settled(ctx)
    record = ctx.settings.data_dir / host_state.STATE_NAME
    key = _key_file(ctx)
    good = key.read_bytes()
    key.write_bytes(b"not a key\n")
    if damage == "garbage":
        record.write_text("{not json")
    elif damage == "missing":
        record.unlink()
    else:
        data = json.loads(record.read_text())
        data["version"] = 0
        record.write_text(json.dumps(data))

    assert reconcile(ctx).written == [str(key)]
    assert key.read_bytes() == good


def test_a_racy_record_is_checked_in_full(ctx: Context) -> None:
    """Files written in the tick the record was made are not trusted on their times."""
    _with_keys(ctx, 1)
    _settled(ctx)
    record = ctx.settings.data_dir / host_state.STATE_NAME
    key = _key_file(ctx)
    good = key.read_bytes()
    data = json.loads(record.read_text())
    data["racy_files"] = [str(key)]
    record.write_text(json.dumps(data))
    # Same size, same times: only the content tells.
    before = key.stat()
    key.write_bytes(bytes(len(good)))
    os.utime(key, ns=(before.st_atime_ns, before.st_mtime_ns))
    signature = list(host_state._signature(key.lstat()))
    at = data["files"].index(str(key)) * len(signature)
    data["file_signatures"][at : at + len(signature)] = signature
    record.write_text(json.dumps(data))

    assert reconcile(ctx).written == [str(key)]
    assert key.read_bytes() == good


def test_a_first_reconcile_of_many_domains_writes_every_file_right(ctx: Context) -> None:
    """Enough keys for batched writes: every file whole, private, and the rerun is a no-op."""
    _with_keys(ctx, 40)
    for index in range(40):
        key = _key_file(ctx, index)
        assert key.stat().st_mode & 0o777 == 0o600
        assert key.read_text().startswith("-----BEGIN PRIVATE KEY-----")
        assert key.parent.stat().st_mode & 0o777 == 0o750
    lines = (ctx.settings.opendkim_path / "SigningTable").read_text().splitlines()
    assert len(lines) == 40
    assert not [p for p in ctx.settings.opendkim_path.rglob("*.tmp")]
    assert not reconcile(ctx).changed

"""DKIM keys survive export and import with their state: which one signs, which are retired."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailctl.errors import InvalidInputError
from mailctl.services import archives, dkim, domains
from mailctl.services.context import Actor, Context

ACTOR = Actor("tester", "192.0.2.9")


def _keys(ctx: Context) -> list[tuple[str, bool]]:
    _name, views = dkim.list_keys(ctx, "example.com")
    return [(v.selector, v.active) for v in views]


def _export_and_delete(ctx: Context, tmp_path: Path) -> Path:
    archive = tmp_path / "example.com.tar.gz"
    archives.export_to_file(ctx, ACTOR, "example.com", archive)
    domains.delete_domain(ctx, ACTOR, "example.com")
    return archive


def _edit_manifest(archive: Path, edit: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite the archive with its manifest changed by ``edit`` (members stay as they are)."""
    with tarfile.open(archive, "r:gz") as source:
        members = [(m, source.extractfile(m).read() if m.isfile() else b"") for m in source]  # type: ignore[union-attr]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as target:
        for member, data in members:
            if member.name == "manifest.json":
                manifest = json.loads(data)
                edit(manifest)
                data = json.dumps(manifest).encode()
                member.size = len(data)
            target.addfile(member, io.BytesIO(data) if member.isfile() else None)
    archive.write_bytes(out.getvalue())


@pytest.fixture
def rotated(ctx: Context) -> Context:
    """example.com with a retired key s1 and the signing key s2."""
    domains.create_domain(ctx, ACTOR, "example.com")
    dkim.add_key(ctx, ACTOR, "example.com", selector="s1", key_type="ed25519")
    dkim.rotate_key(ctx, ACTOR, "example.com", selector="s2")
    return ctx


def test_round_trip_keeps_which_key_signs(rotated: Context, tmp_path: Path) -> None:
    """The signing and the retired key come back as they were, and OpenDKIM signs with s2."""
    archive = _export_and_delete(rotated, tmp_path)
    archives.import_domain(rotated, ACTOR, archive)
    assert _keys(rotated) == [("s2", True), ("s1", False)]
    key_table = (rotated.settings.opendkim_path / "KeyTable").read_text()
    assert "s2:" in key_table
    assert "s1:" not in key_table


def test_a_domain_without_signing_key_stays_unsigned(rotated: Context, tmp_path: Path) -> None:
    """Once the signing key is removed, an exported and imported domain has only retired keys."""
    dkim.remove_key(rotated, ACTOR, "example.com", "s2")
    archive = _export_and_delete(rotated, tmp_path)
    archives.import_domain(rotated, ACTOR, archive)
    assert _keys(rotated) == [("s1", False)]
    assert "example.com" not in (rotated.settings.opendkim_path / "KeyTable").read_text()


def test_archive_without_flags_makes_the_last_key_sign(rotated: Context, tmp_path: Path) -> None:
    """Archives written before the active flag list the signing key last; that still holds."""
    archive = _export_and_delete(rotated, tmp_path)

    def drop_flags(manifest: dict[str, Any]) -> None:
        for key in manifest["dkim_keys"]:
            del key["active"]

    _edit_manifest(archive, drop_flags)
    archives.import_domain(rotated, ACTOR, archive)
    assert _keys(rotated) == [("s2", True), ("s1", False)]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ((True, True), "The archive has more than one active DKIM key."),
        ((True, None), "The archive marks some DKIM keys active or not, not all."),
        ((1, True), "The manifest's DKIM key active flag must be true or false, not 1."),
    ],
)
def test_inconsistent_flags_are_refused(
    rotated: Context, tmp_path: Path, flags: tuple[object, object], message: str
) -> None:
    """Two signing keys, a flag on one key only, or a flag that is no boolean: nothing imported."""
    archive = _export_and_delete(rotated, tmp_path)

    def set_flags(manifest: dict[str, Any]) -> None:
        for key, flag in zip(manifest["dkim_keys"], flags, strict=True):
            if flag is None:
                del key["active"]
            else:
                key["active"] = flag

    _edit_manifest(archive, set_flags)
    with pytest.raises(InvalidInputError, match=message.replace(".", r"\.")):
        archives.import_domain(rotated, ACTOR, archive)
    with rotated.uow() as uow:
        assert uow.domains.by_name("example.com") is None

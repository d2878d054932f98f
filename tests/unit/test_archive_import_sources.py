"""An archive imports alike from a file, a seekable stream and a stream read only once."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mailctl.services import archives, domains
from mailctl.services.context import Actor, Context

ACTOR = Actor("tester", "192.0.2.9")


class _ReadOnce:
    """A stream with nothing but read(): a pipe, a socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, size: int = -1, /) -> bytes:
        return self._data.read(size)


@pytest.mark.parametrize("kind", ["file", "seekable stream", "read-once stream"])
def test_an_exported_archive_imports_from_any_source(
    ctx: Context, tmp_path: Path, kind: str
) -> None:
    """Its manifest comes last, so it is read twice: a read-once stream is spooled first."""
    domains.create_domain(ctx, ACTOR, "example.com", email="a@example.com", password="pw-12345678")
    mail = ctx.maildirs.mailbox_path("example.com", "a") / "cur" / "1700000000.M1P1.host:2,S"
    mail.write_bytes(b"hello")
    archive = tmp_path / "example.com.tar.gz"
    archives.export_to_file(ctx, ACTOR, "example.com", archive)
    domains.delete_domain(ctx, ACTOR, "example.com")
    data = archive.read_bytes()
    source = {
        "file": archive,
        "seekable stream": io.BytesIO(data),
        "read-once stream": _ReadOnce(data),
    }[kind]

    result = archives.import_domain(ctx, ACTOR, source)

    assert (result.domain, result.mailboxes, result.files) == ("example.com", 1, 1)
    assert mail.read_bytes() == b"hello"
    assert list((ctx.settings.data_dir / "imports").iterdir()) == []

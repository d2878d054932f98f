"""A domain with thousands of oddly named messages survives export, delete and import exactly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import httpx
import pytest
from tests.conftest import LiveServer

from mailctl.domain.dkim import generate_key
from mailctl.domain.passwords import verify_password
from mailctl.errors import UnavailableError
from mailctl.services import archives, domains
from mailctl.services.context import Actor, Context
from mailctl.storage.uow import UnitOfWork

ACTOR = Actor("tester")
MESSAGES_PER_FOLDER = 500
# Maildir names as Dovecot and other writers make them, and worse.
ODD_NAMES = (
    "{n}.M{n}P7.host,S=12,W=13:2,FRS",
    "{n}.M{n}P7.host:2,",
    "{n} with spaces, and commas:2,S",
    "{n}.ünïcödé-名前.host:2,RS",
)

Snapshot = dict[str, tuple[str, int]]


@pytest.fixture
def backend() -> str:
    """One big round trip on SQLite; the other backends run the small API round trip."""
    return "sqlite"


def _fill(mailbox: Path, seed: int) -> None:
    """Thousands of messages in cur/, new/ and Dovecot folders, empty files, index files."""
    for folder in ("", ".Sent", ".Archive.2023"):
        for sub in ("cur", "new", "tmp"):
            (mailbox / folder / sub).mkdir(parents=True, exist_ok=True)
        for n in range(MESSAGES_PER_FOLDER):
            name = ODD_NAMES[n % len(ODD_NAMES)].format(n=1_700_000_000 + n)
            sub = "new" if n % 10 == 0 else "cur"
            body = b"" if n % 97 == 0 else f"Subject: {seed}/{folder}/{n}\r\n\r\n".encode() * 3
            path = mailbox / folder / sub / name
            path.write_bytes(body)
            os.utime(path, ns=(1_700_000_000_123_456_789 + n, 1_700_000_000_123_456_789 + n))
    (mailbox / "dovecot-uidlist").write_bytes(b"3 V1700000000 N1\n")
    (mailbox / "dovecot.index.log").write_bytes(os.urandom(4096))


def _snapshot(root: Path) -> Snapshot:
    found: Snapshot = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            found[path.relative_to(root).as_posix()] = (
                hashlib.sha256(path.read_bytes()).hexdigest(),
                path.stat().st_mtime_ns,
            )
    return found


Rows = tuple[list[tuple[str, str]], list[tuple[str, str]], list[tuple[str, str, str]]]


def _rows(ctx: Context) -> Rows:
    with ctx.uow() as uow:
        domain = uow.domains.by_name("example.com")
        assert domain is not None
        return (
            [(u.email, u.password) for u in uow.users.list_for_domain(domain.id)],
            [(a.source, a.destination) for a in uow.aliases.list_for_domain(domain.id)],
            [(k.selector, k.key_type, k.private_key) for k in uow.dkim_keys.for_domain(domain.id)],
        )


@pytest.fixture
def big_domain(server: LiveServer) -> Path:
    """example.com: two mailboxes full of odd mail, an alias, a catch-all and a DKIM key."""
    ctx = server.ctx
    view, _ = domains.create_domain(ctx, ACTOR, "example.com", "alice@example.com", "alice-pw-1")
    with ctx.uow() as uow:
        uow.users.add(view.id, "bob@example.com", "{SHA512-CRYPT}" + _sha512_crypt())
        uow.aliases.add(view.id, "postmaster@example.com", "alice@example.com")
        uow.aliases.add(view.id, "@example.com", "alice@example.com,bob@example.com")
        uow.dkim_keys.add(view.id, "mail", "ed25519", generate_key("ed25519"))
        uow.commit()
    root = ctx.settings.mail_root_path / "example.com"
    _fill(root / "alice", 1)
    _fill(root / "bob", 2)
    return root


def _sha512_crypt() -> str:
    from mailctl.domain.passwords import hash_password

    return hash_password("bob-pw-2", "SHA512-CRYPT").removeprefix("{SHA512-CRYPT}")


@pytest.mark.slow
def test_big_round_trip_is_byte_exact(
    api: httpx.Client, server: LiveServer, big_domain: Path
) -> None:
    """Export, delete, import: same rows and hashes, every file identical; then 409, replace."""
    before_files = _snapshot(big_domain)
    before_rows = _rows(server.ctx)
    assert len(before_files) > 3000
    response = api.get("/export/domain", params={"domain": "example.com"})
    assert response.status_code == 200, response.text
    archive = response.content
    assert api.request("DELETE", "/domain", data={"domain": "example.com"}).status_code == 200
    assert not big_domain.exists()
    imported = api.post("/import/domain", files={"archive": ("example.com.tar.gz", archive)})
    assert imported.status_code == 200, imported.text
    assert imported.json()["files"] == len(before_files)
    assert imported.json()["mailboxes"] == 2
    assert _snapshot(big_domain) == before_files
    assert _rows(server.ctx) == before_rows
    users = dict(before_rows[0])
    assert verify_password("alice-pw-1", users["alice@example.com"])
    assert verify_password("bob-pw-2", users["bob@example.com"])
    assert (big_domain / "alice" / "tmp").is_dir()
    conflict = api.post("/import/domain", files={"archive": ("example.com.tar.gz", archive)})
    assert conflict.status_code == 409
    replaced = api.post(
        "/import/domain",
        params={"replace": "true"},
        content=archive,
        headers={"Content-Type": "application/gzip"},
    )
    assert replaced.status_code == 200, replaced.text
    assert _snapshot(big_domain) == before_files
    assert _rows(server.ctx) == before_rows
    assert list((server.ctx.settings.data_dir / "imports").iterdir()) == []


def test_failed_commit_takes_mail_back_out(
    server: LiveServer, big_domain: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If the import's commit fails, no row stays and the moved maildirs are gone again."""
    ctx = server.ctx
    archive = tmp_path / "example.com.tar.gz"
    archives.export_to_file(ctx, ACTOR, "example.com", archive)
    domains.delete_domain(ctx, ACTOR, "example.com")

    def refuse(_self: UnitOfWork) -> None:
        raise UnavailableError("The database is unavailable.")

    monkeypatch.setattr(UnitOfWork, "commit", refuse)
    with pytest.raises(UnavailableError):
        archives.import_domain(ctx, ACTOR, archive)
    monkeypatch.undo()
    with ctx.uow() as uow:
        assert uow.domains.by_name("example.com") is None
    assert not big_domain.exists()
    assert list((ctx.settings.data_dir / "imports").iterdir()) == []

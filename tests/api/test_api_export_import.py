"""Domain export and import through HTTP: headers, archive contents, refusals, cleanliness."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import LiveServer

from mailctl.config import Settings
from mailctl.domain.dkim import generate_key
from mailctl.domain.passwords import verify_password

MESSAGES = {
    "alice/cur/1700000000.M1P1.host,S=5:2,S": b"hello",
    "alice/new/1700000001.M2P1.host": b"Subject: new\r\n\r\nbody\r\n",
    "alice/.Sent/cur/1700000002.M3P1.host:2,S": b"sent mail",
    "bob/cur/1700000003.M4P1.host:2,": b"",
}


def _populate(api: httpx.Client, server: LiveServer) -> dict[str, str]:
    """example.com with alice and bob, an alias, a DKIM key, mail; mail of another domain."""
    created = api.post(
        "/domains",
        files={
            "domain": (None, "example.com"),
            "username": (None, "alice@example.com"),
            "password": (None, "alice-pass-1"),
        },
    )
    assert created.status_code == 200, created.text
    domain_id = created.json()["domain"]["id"]
    bob = api.post(
        f"/user/{domain_id}", data={"email": "bob@example.com", "password": "bob-pass-2"}
    )
    assert bob.status_code == 200, bob.text
    assert api.post("/domains", data={"domain": "other.example"}).status_code == 200
    key = generate_key("ed25519")
    with server.ctx.uow() as uow:
        uow.aliases.add(domain_id, "postmaster@example.com", "alice@example.com")
        uow.dkim_keys.add(domain_id, "mail", "ed25519", key)
        uow.commit()
        hashes = {u.email: u.password for u in uow.users.list_for_domain(domain_id)}
    root = server.ctx.settings.mail_root_path
    for rel, data in MESSAGES.items():
        path = root / "example.com" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    secret = root / "other.example" / "carol" / "cur" / "1700000009.M9P9.host:2,S"
    secret.parent.mkdir(parents=True)
    secret.write_bytes(b"not for export")
    return {**hashes, "dkim": key}


def _members(data: bytes) -> tuple[list[str], dict[str, bytes], dict[str, Any]]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        names = tar.getnames()
        contents = {}
        for member in tar.getmembers():
            if member.isfile():
                handle = tar.extractfile(member)
                assert handle is not None
                contents[member.name] = handle.read()
    return names, contents, json.loads(contents["manifest.json"])


def _export(api: httpx.Client) -> httpx.Response:
    response = api.request("GET", "/export/domain", files={"domain": (None, "example.com")})
    assert response.status_code == 200, response.text
    return response


def _leftovers(settings: Settings) -> list[Path]:
    imports = settings.data_dir / "imports"
    return sorted(imports.iterdir()) if imports.exists() else []


def test_export_streams_domain_archive(api: httpx.Client, server: LiveServer) -> None:
    """GET /export/domain (-F field) streams a .tar.gz of rows, hashes, key and mail only."""
    expected = _populate(api, server)
    response = _export(api)
    assert response.headers["content-type"] == "application/gzip"
    assert re.fullmatch(
        r"attachment; filename=example\.com-\d{8}T\d{6}Z\.tar\.gz",
        response.headers["content-disposition"],
    )
    names, contents, manifest = _members(response.content)
    assert names[-1] == "manifest.json"
    assert manifest["domain"] == "example.com"
    assert {(m["email"], m["password"]) for m in manifest["mailboxes"]} == {
        ("alice@example.com", expected["alice@example.com"]),
        ("bob@example.com", expected["bob@example.com"]),
    }
    assert manifest["aliases"] == [
        {"source": "postmaster@example.com", "destination": "alice@example.com"}
    ]
    assert manifest["dkim_keys"] == [
        {"selector": "mail", "key_type": "ed25519", "private_pem": expected["dkim"], "active": True}
    ]
    for rel, data in MESSAGES.items():
        assert contents[f"maildirs/{rel}"] == data
    assert all(name.startswith("maildirs/") or name == "manifest.json" for name in names)
    assert not any(b"not for export" in data for data in contents.values())


def test_export_query_field_and_unknown_domain(api: httpx.Client) -> None:
    """An unknown domain is a 404 JSON error before any archive byte; ?domain= works too."""
    response = api.get("/export/domain", params={"domain": "missing.example"})
    assert response.status_code == 404
    assert response.json() == {
        "result": False,
        "msg": "The domain missing.example does not exist.",
    }
    assert api.get("/export/domain").status_code == 400
    bad = api.get("/export/domain", params={"domain": "missing.example", "format": "zip"})
    assert bad.status_code == 400


def test_export_format_json_writes_file(api: httpx.Client, server: LiveServer) -> None:
    """format=json writes the archive in the archive directory and says where, size, sha256."""
    _populate(api, server)
    response = api.get("/export/domain", params={"domain": "example.com", "format": "json"})
    assert response.status_code == 200, response.text
    body = response.json()
    path = Path(body["file"])
    assert body["result"] is True
    assert path.parent == server.ctx.settings.archive_path
    assert path.name.startswith("example.com-") and path.name.endswith(".tar.gz")
    data = path.read_bytes()
    assert body["size"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    by_accept = api.get(
        "/export/domain", params={"domain": "example.com"}, headers={"Accept": "application/json"}
    )
    assert by_accept.status_code == 200
    assert by_accept.json()["file"].endswith(".tar.gz")


def test_import_after_delete_restores_domain(api: httpx.Client, server: LiveServer) -> None:
    """Export, delete, import (raw body): same hashes, alias, key and mail; 409 on a second try."""
    expected = _populate(api, server)
    archive = _export(api).content
    assert api.request("DELETE", "/domain", data={"domain": "example.com"}).status_code == 200
    response = api.post(
        "/import/domain", content=archive, headers={"Content-Type": "application/gzip"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["result"] is True
    assert (body["domain"], body["mailboxes"], body["files"]) == ("example.com", 2, 4)
    with server.ctx.uow() as uow:
        domain = uow.domains.by_name("example.com")
        assert domain is not None
        users = {u.email: u.password for u in uow.users.list_for_domain(domain.id)}
        aliases = [(a.source, a.destination) for a in uow.aliases.list_for_domain(domain.id)]
        keys = [(k.selector, k.private_key, k.active) for k in uow.dkim_keys.for_domain(domain.id)]
    assert users == {k: v for k, v in expected.items() if "@" in k}
    assert verify_password("bob-pass-2", users["bob@example.com"])
    assert aliases == [("postmaster@example.com", "alice@example.com")]
    assert keys == [("mail", expected["dkim"], True)]
    root = server.ctx.settings.mail_root_path / "example.com"
    for rel, data in MESSAGES.items():
        assert (root / rel).read_bytes() == data
    again = api.post("/import/domain", files={"archive": ("x.tar.gz", archive)})
    assert again.status_code == 409
    assert "exists already" in again.json()["msg"]
    assert _leftovers(server.ctx.settings) == []


def test_import_replace_moves_old_domain_to_trash(api: httpx.Client, server: LiveServer) -> None:
    """replace=true puts the existing domain in the trash and imports the archive in its place."""
    _populate(api, server)
    archive = _export(api).content
    extra = server.ctx.settings.mail_root_path / "example.com" / "alice" / "cur" / "later:2,S"
    extra.write_bytes(b"arrived after the export")
    response = api.post(
        "/import/domain",
        files={"archive": ("example.com.tar.gz", archive, "application/gzip")},
        data={"replace": "true"},
    )
    assert response.status_code == 200, response.text
    assert not extra.exists()
    trash = api.get("/trash").json()["trash"]
    assert [(t["kind"], t["target"]) for t in trash] == [("domain", "example.com")]
    trashed = server.ctx.settings.trash_path / trash[0]["id"] / "data" / "alice" / "cur"
    assert (trashed / "later:2,S").read_bytes() == b"arrived after the export"


class TestHostileImports:
    """Broken or hostile archives on a server with small import limits (SQLite only)."""

    @pytest.fixture
    def backend(self) -> str:
        return "sqlite"

    @pytest.fixture
    def settings(self, database_url: str, tmp_path: Path) -> Settings:
        return Settings(
            data_dir=tmp_path / "data",
            database_url=database_url,
            admin_username="admin",
            max_import_bytes=256 * 1024,
        )

    @staticmethod
    def _archive(members: list[tuple[tarfile.TarInfo, bytes]], manifest: bytes) -> bytes:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            for info, data in members:
                tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
            info = tarfile.TarInfo("manifest.json")
            info.size = len(manifest)
            tar.addfile(info, io.BytesIO(manifest))
        return raw.getvalue()

    @staticmethod
    def _manifest(files: dict[str, bytes]) -> bytes:
        return json.dumps(
            {
                "version": 1,
                "domain": "example.com",
                "generated_at": "2024-05-01T12:00:00+00:00",
                "mailboxes": [
                    {"email": "a@example.com", "password": "{PLAIN}x", "maildir": "maildirs/a"}
                ],
                "aliases": [],
                "dkim_keys": [],
                "directories": [],
                "files": [
                    {
                        "path": path,
                        "size": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                        "mtime_ns": 1_700_000_000 * 10**9,
                    }
                    for path, data in files.items()
                ],
            }
        ).encode()

    def _cases(self, good: bytes) -> Iterator[tuple[str, bytes, int, str]]:
        yield "truncated", good[: len(good) // 2], 400, "truncated"
        flipped = bytearray(good)
        flipped[len(flipped) // 3] ^= 0x01
        yield "flipped byte", bytes(flipped), 400, ""
        evil = tarfile.TarInfo("maildirs/../x")
        evil.size = 1
        yield "dot-dot", self._archive([(evil, b"x")], self._manifest({})), 400, "'..'"
        link = tarfile.TarInfo("maildirs/a/cur/link")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        yield "symlink", self._archive([(link, b"")], self._manifest({})), 400, "symbolic link"
        yield "not gzip", b"PK\x03\x04 a zip file", 400, "not a gzip file"
        yield "bad hash", self._archive([], self._manifest({})), 400, "pre-hashed"

    @staticmethod
    def _bomb() -> bytes:
        """A gzip of a tar holding 64 MiB of zeros, compressed on the fly to about 64 KiB."""
        info = tarfile.TarInfo("maildirs/a/cur/zeros")
        info.size = 64 * 1024 * 1024
        compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
        out = [compressor.compress(info.tobuf(tarfile.PAX_FORMAT))]
        zeros = bytes(1024 * 1024)
        out += [compressor.compress(zeros) for _ in range(64)]
        out.append(compressor.flush())
        return b"".join(out)

    def _assert_nothing_left(self, api: httpx.Client, server: LiveServer) -> None:
        assert api.get("/domains").json()["domains"] == []
        assert not (server.ctx.settings.mail_root_path / "example.com").exists()
        assert _leftovers(server.ctx.settings) == []

    def test_refused_archives_leave_nothing(self, api: httpx.Client, server: LiveServer) -> None:
        """Truncated, tampered, ../, symlink, non-gzip or bad-hash archives: 400, no traces."""
        body = b"hello"
        good = self._archive(
            [(self._file("maildirs/a/cur/m", body), body)],
            self._manifest({"maildirs/a/cur/m": body}),
        )
        for name, archive, status, words in self._cases(good):
            response = api.post("/import/domain", files={"archive": ("a.tar.gz", archive)})
            assert response.status_code == status, (name, response.text)
            assert response.json()["result"] is False
            assert words in response.json()["msg"], name
            self._assert_nothing_left(api, server)

    @staticmethod
    def _file(name: str, data: bytes) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        return info

    def test_gzip_bomb_and_oversized_upload(self, api: httpx.Client, server: LiveServer) -> None:
        """A gzip bomb and an upload over max_import_bytes are refused with 413, no traces."""
        bomb = self._bomb()
        assert len(bomb) < 256 * 1024
        response = api.post(
            "/import/domain", content=bomb, headers={"Content-Type": "application/gzip"}
        )
        assert response.status_code == 413, response.text
        assert "bytes of files" in response.json()["msg"]
        self._assert_nothing_left(api, server)
        big = gzip.compress(bytes(range(256)) * 4096, compresslevel=0)
        assert len(big) > 256 * 1024
        raw = api.post("/import/domain", content=big, headers={"Content-Type": "application/gzip"})
        assert raw.status_code == 413
        form = api.post("/import/domain", files={"archive": ("big.tar.gz", big)})
        assert form.status_code == 413
        self._assert_nothing_left(api, server)

    def test_form_without_archive_field(self, api: httpx.Client, server: LiveServer) -> None:
        """A form whose file is not called 'archive' gets a 400 that names the field."""
        response = api.post("/import/domain", files={"file": ("a.tar.gz", b"\x1f\x8b")})
        assert response.status_code == 400
        assert "'archive'" in response.json()["msg"]
        self._assert_nothing_left(api, server)


def test_trash_routes_list_and_restore(api: httpx.Client, server: LiveServer) -> None:
    """GET /trash lists a deleted mailbox; POST /trash/restore brings it back once."""
    _populate(api, server)
    deleted = api.request("DELETE", "/users", data={"email": "bob@example.com"})
    assert deleted.status_code == 200, deleted.text
    (entry,) = api.get("/trash").json()["trash"]
    assert (entry["kind"], entry["target"], entry["mailboxes"]) == ("mailbox", "bob@example.com", 1)
    restored = api.post("/trash/restore", data={"id": entry["id"]})
    assert restored.status_code == 200, restored.text
    assert restored.json()["msg"] == "The mailbox bob@example.com was restored."
    domain_id = api.get("/domains").json()["domains"][0]["id"]
    emails = {u["email"] for u in api.get(f"/users/{domain_id}").json()["users"]}
    assert "bob@example.com" in emails
    assert api.post("/trash/restore", data={"id": entry["id"]}).status_code == 404
    assert api.post("/trash/restore", data={"id": "../../etc"}).status_code == 400

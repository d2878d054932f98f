"""A full disk answers 507 "The disk is full" (exit 10 on the command line), loses
nothing, and everything works again once space is freed. On a real, small tmpfs."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from tests.conftest import ADMIN, ADMIN_PASSWORD
from tests.liveserver import live_api
from tests.pki import ca_signed
from tests.smalldisk import Filler, small_disk
from typer.testing import CliRunner

from mailctl.cli.main import app
from mailctl.config import Settings
from mailctl.services import auth
from mailctl.services.context import Context

Figure = Callable[[str, object], None]
PASSWORD = "a long mailbox password"
HOST = "mail.example.com"
DISK_FULL = "The disk is full"
# 507 Insufficient Storage: the server cannot store what the request needs.
INSUFFICIENT_STORAGE = 507
DISK_FULL_EXIT = 10


@contextmanager
def _api(settings: Settings) -> Iterator[httpx.Client]:
    ctx = Context.from_settings(settings)
    try:
        auth.initialize(ctx, ADMIN, ADMIN_PASSWORD)
        with live_api(ctx) as base, httpx.Client(base_url=base, timeout=60) as client:
            login = client.post(
                "/auth", files={"username": (None, ADMIN), "password": (None, ADMIN_PASSWORD)}
            )
            assert login.status_code == 200, login.text
            client.headers["Auth-token"] = login.json()["token"]
            yield client
    finally:
        ctx.close()


def _form(**fields: str) -> dict[str, tuple[None, bytes]]:
    return {name: (None, value.encode()) for name, value in fields.items()}


class Scene:
    """Two domains made while the disk had room; one exported and deleted, to re-import."""

    def __init__(self, api: httpx.Client) -> None:
        self.api = api
        kept = api.post(
            "/domains", files=_form(domain="kept.example", username="keep", password=PASSWORD)
        )
        assert kept.status_code == 200, kept.text
        self.kept_id = kept.json()["domain"]["id"]
        moved = api.post(
            "/domains", files=_form(domain="moved.example", username="move", password=PASSWORD)
        )
        assert moved.status_code == 200, moved.text
        exported = api.get("/export/domain", params={"domain": "moved.example"})
        assert exported.status_code == 200, exported.text
        self.archive = exported.content
        gone = api.request("DELETE", "/domain", params={"domain": "moved.example"})
        assert gone.status_code == 200, gone.text
        self.chain, self.key, _ = ca_signed(HOST)

    def create_mailbox(self) -> httpx.Response:
        return self.api.post(
            f"/user/{self.kept_id}", files=_form(email="new@kept.example", password=PASSWORD)
        )

    def upload_certificate(self) -> httpx.Response:
        return self.api.post(
            "/ssl/upload",
            files={
                "ssl_certificate": ("fullchain.pem", self.chain, "application/x-pem-file"),
                "ssl_certificate_key": ("privkey.pem", self.key, "application/x-pem-file"),
            },
        )

    def import_archive(self) -> httpx.Response:
        return self.api.post(
            "/import/domain",
            files={"archive": ("moved.example.tar.gz", self.archive, "application/gzip")},
        )

    def export_to_file(self) -> httpx.Response:
        return self.api.get("/export/domain", params={"domain": "kept.example", "format": "json"})

    def domains(self) -> list[str]:
        return sorted(d["name"] for d in self.api.get("/domains").json()["domains"])

    def mailboxes(self) -> list[str]:
        return sorted(u["email"] for u in self.api.get(f"/users/{self.kept_id}").json()["users"])


def _assert_disk_full(response: httpx.Response, what: str) -> None:
    assert response.status_code == INSUFFICIENT_STORAGE, (what, response.status_code, response.text)
    body = response.json()
    assert body["result"] is False
    assert body["msg"].startswith(DISK_FULL), body


def _truncate_wal(database: Path) -> None:
    """Empty SQLite's write-ahead log, so the next write needs new space on the disk."""
    with sqlite3.connect(database) as conn:
        busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    assert busy == 0


def _cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {
        "MAILCTL_DATA_DIR": str(settings.data_dir),
        "MAILCTL_DATABASE_URL": settings.database_url,
    }
    result = CliRunner().invoke(app, list(args), env=env)
    return result.exit_code, result.output


@pytest.mark.security(
    finding=11,
    claim="A full disk under the SQLite database and the data folder answers 507 'The disk "
    "is full' to a new mailbox, certificate, import, export or domain (exit 10 on the command "
    "line), keeps every earlier row and file, and all of them work once space is freed.",
)
def test_full_disk_under_database_and_data(figure: Figure) -> None:
    """With the database and the data folder on a full disk, writes say so and lose nothing."""
    with small_disk() as disk:
        database = disk / "mailctl.db"
        settings = Settings(
            data_dir=disk / "data", database_url=f"sqlite:///{database}", admin_username=ADMIN
        )
        with _api(settings) as api:
            scene = Scene(api)
            filler = Filler(disk)
            _truncate_wal(database)
            filler.fill()
            figure("bytes and files written to fill the disk", (filler.bytes, filler.files))
            attempts = {
                "mailbox": scene.create_mailbox,
                "certificate": scene.upload_certificate,
                "import": scene.import_archive,
                "export": scene.export_to_file,
                "domain": lambda: api.post("/domains", files=_form(domain="new.example")),
            }
            answers = {what: attempt() for what, attempt in attempts.items()}
            for what, response in answers.items():
                _assert_disk_full(response, what)
            # A certificate is a row first: SQLite itself refused it (SQLITE_FULL).
            assert "The database cannot store" in answers["certificate"].json()["msg"]
            assert "maildir" in answers["mailbox"].json()["msg"]
            code, output = _cli(settings, "domain", "add", "cli.example")
            assert code == DISK_FULL_EXIT, output
            assert DISK_FULL in output
            # Nothing lost, nothing half made.
            assert scene.domains() == ["kept.example"]
            assert scene.mailboxes() == ["keep@kept.example"]
            assert (settings.mail_root_path / "kept.example" / "keep").is_dir()
            assert not (settings.mail_root_path / "kept.example" / "new").exists()
            assert api.get("/ssl/certificates").json()["certificates"] == []

            filler.free()
            for what, attempt in attempts.items():
                response = attempt()
                assert response.status_code == 200, (what, response.text)
            code, output = _cli(settings, "domain", "add", "cli.example")
            assert code == 0, output
            assert scene.domains() == [
                "cli.example",
                "kept.example",
                "moved.example",
                "new.example",
            ]
            assert scene.mailboxes() == ["keep@kept.example", "new@kept.example"]
            assert (settings.tls_path / HOST / "fullchain.pem").read_bytes() == scene.chain


@pytest.mark.security(
    finding=11,
    claim="When only the data folder's disk is full, a new mailbox, import or export answers 507 "
    "'The disk is full' with no row left behind, and a stored certificate's answer says the "
    "disk is full instead of reporting an internal error.",
)
def test_full_disk_under_data_folder_only(tmp_path: Path, figure: Figure) -> None:
    """Maildirs, uploads and certificate files meet the full disk; the database does not."""
    with small_disk() as disk:
        settings = Settings(
            data_dir=disk / "data",
            database_url=f"sqlite:///{tmp_path / 'mailctl.db'}",
            admin_username=ADMIN,
        )
        with _api(settings) as api:
            scene = Scene(api)
            filler = Filler(disk)
            filler.fill()
            figure("bytes and files written to fill the disk", (filler.bytes, filler.files))
            _assert_disk_full(scene.create_mailbox(), "mailbox")
            _assert_disk_full(scene.import_archive(), "import")
            _assert_disk_full(scene.export_to_file(), "export")
            assert list(settings.archive_path.glob("*")) == []  # no half-written archive
            assert scene.mailboxes() == ["keep@kept.example"]
            assert scene.domains() == ["kept.example"]
            stored = scene.upload_certificate()
            assert stored.status_code == 200, stored.text
            assert stored.json()["reload"]["ok"] is False
            assert stored.json()["reload"]["error"].startswith(DISK_FULL)
            assert not (settings.tls_path / HOST / "fullchain.pem").exists()

            filler.free()
            assert scene.create_mailbox().status_code == 200
            assert (settings.mail_root_path / "kept.example" / "new").is_dir()
            assert scene.import_archive().status_code == 200
            again = scene.upload_certificate()
            assert again.status_code == 200, again.text
            assert again.json()["reload"]["ok"] is True
            assert (settings.tls_path / HOST / "fullchain.pem").read_bytes() == scene.chain

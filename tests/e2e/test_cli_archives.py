"""The CLI exports, imports and restores from the trash, locally and against a remote API."""

from __future__ import annotations

import tarfile
from pathlib import Path

import httpx
import pytest
from tests.conftest import ADMIN, ADMIN_PASSWORD, LiveServer
from typer.testing import CliRunner, Result

from mailctl.cli.main import app
from mailctl.config import Settings
from mailctl.domain.passwords import verify_password
from mailctl.services import domains, trash
from mailctl.services.context import Actor, Context

MESSAGE = "cur/1700000000.M1P1.host,S=5:2,S"


@pytest.fixture
def backend() -> str:
    """These commands talk to the same services as the API tests; SQLite is enough here."""
    return "sqlite"


class Cli:
    """Runs ``mailctl`` in-process against one data directory and database."""

    def __init__(self, database_url: str, data_dir: Path) -> None:
        self.runner = CliRunner()
        self.settings = Settings(data_dir=data_dir, database_url=database_url)
        self.env = {
            "MAILCTL_DATA_DIR": str(data_dir),
            "MAILCTL_DATABASE_URL": database_url,
            "MAILCTL_ADMIN_PASSWORD": "",
            "MAILCTL_TOKEN": "",
        }

    def __call__(self, *args: str, input: str | None = None, **env: str) -> Result:
        return self.runner.invoke(
            app, list(args), env={**self.env, **env}, input=input, catch_exceptions=False
        )

    def trash_ids(self) -> dict[str, str]:
        ctx = Context.from_settings(self.settings)
        try:
            return {item.target: item.id for item in trash.list_trash(ctx)}
        finally:
            ctx.close()


@pytest.fixture
def cli(database_url: str, tmp_path: Path) -> Cli:
    return Cli(database_url, tmp_path / "data")


def test_export_import_and_trash_commands(cli: Cli, tmp_path: Path) -> None:
    """export -o, rm, import, import again (5), --replace, trash list/restore/purge."""
    assert cli("init").exit_code == 0
    added = cli(
        "domain", "add", "example.com", "--user", "a@example.com", "--password", "pw-a-1234"
    )
    assert added.exit_code == 0, added.output
    maildir = cli.settings.mail_root_path / "example.com" / "a"
    (maildir / MESSAGE).write_bytes(b"hello")
    archive = tmp_path / "backup.tar.gz"
    exported = cli("export", "example.com", "-o", str(archive))
    assert exported.exit_code == 0, exported.output
    assert "Exported example.com to" in exported.output
    with tarfile.open(archive) as tar:
        assert tar.getnames()[-1] == "manifest.json"
        assert "maildirs/a/" + MESSAGE in tar.getnames()
    assert cli("domain", "rm", "example.com", "--yes").exit_code == 0
    imported = cli("import", str(archive))
    assert imported.exit_code == 0, imported.output
    assert "Imported example.com: 1 mailboxes" in imported.output
    assert (maildir / MESSAGE).read_bytes() == b"hello"
    again = cli("import", str(archive))
    assert again.exit_code == 5
    assert "exists already" in again.output
    replaced = cli("import", str(archive), "--replace")
    assert replaced.exit_code == 0, replaced.output
    assert "in the trash" in replaced.output
    listing = cli("trash", "list")
    assert listing.exit_code == 0 and "example.com" in listing.output
    ids = cli.trash_ids()
    assert cli("trash", "restore", ids["example.com"]).exit_code == 5
    assert cli("user", "rm", "a@example.com", "--yes").exit_code == 0
    restored = cli("trash", "restore", cli.trash_ids()["a@example.com"])
    assert restored.exit_code == 0, restored.output
    assert "Restored the mailbox a@example.com" in restored.output
    assert (maildir / MESSAGE).read_bytes() == b"hello"
    assert cli("trash", "purge", "--yes").exit_code == 0
    assert "example.com" in cli("trash", "list").output
    declined = cli("trash", "purge", "--older-than", "0", input="n\n")
    assert declined.exit_code == 1
    assert "example.com" in cli("trash", "list").output
    purged = cli("purge", "--older-than", "0", "--yes")
    assert purged.exit_code == 0 and "Purged domain example.com" in purged.output
    assert "The trash is empty." in cli("trash", "list").output
    assert cli("trash", "restore", "../etc").exit_code == 2


def test_remote_export_and_import(cli: Cli, server: LiveServer, tmp_path: Path) -> None:
    """--url downloads the export and uploads an import, logging in or with MAILCTL_TOKEN."""
    ctx = server.ctx
    domains.create_domain(ctx, Actor("t"), "example.com", "a@example.com", "pw-a-1234")
    (ctx.settings.mail_root_path / "example.com" / "a" / MESSAGE).write_bytes(b"hello")
    login = ("--url", server.url, "--username", ADMIN, "--password", ADMIN_PASSWORD)
    out_dir = tmp_path / "downloads"
    out_dir.mkdir()
    exported = cli("export", "example.com", "-o", str(out_dir), *login)
    assert exported.exit_code == 0, exported.output
    (archive,) = out_dir.iterdir()
    assert archive.name.startswith("example.com-") and archive.name.endswith(".tar.gz")
    missing = cli("export", "missing.example", "-o", str(out_dir), *login)
    assert missing.exit_code == 4
    assert "does not exist" in missing.output
    assert list(out_dir.iterdir()) == [archive]
    domains.delete_domain(ctx, Actor("t"), "example.com")
    token = httpx.post(
        f"{server.url}/auth", data={"username": ADMIN, "password": ADMIN_PASSWORD}
    ).json()["token"]
    imported = cli("import", str(archive), "--url", server.url, MAILCTL_TOKEN=token)
    assert imported.exit_code == 0, imported.output
    assert "Imported example.com: 1 mailboxes, 1 files" in imported.output
    with ctx.uow() as uow:
        user = uow.users.by_email("a@example.com")
        assert user is not None
        assert verify_password("pw-a-1234", user.password)
    assert (ctx.settings.mail_root_path / "example.com" / "a" / MESSAGE).read_bytes() == b"hello"
    conflict = cli("import", str(archive), "--url", server.url, MAILCTL_TOKEN=token)
    assert conflict.exit_code == 5
    refused = cli("import", str(archive), "--url", server.url, MAILCTL_TOKEN="not-a-token")
    assert refused.exit_code == 3


def test_remote_trash_list_and_restore(cli: Cli, server: LiveServer) -> None:
    """trash list and restore with --url work on the remote host's trash, errors keep codes."""
    ctx = server.ctx
    domains.create_domain(ctx, Actor("t"), "example.com", "a@example.com", "pw-a-1234")
    (ctx.settings.mail_root_path / "example.com" / "a" / MESSAGE).write_bytes(b"hello")
    login = ("--url", server.url, "--username", ADMIN, "--password", ADMIN_PASSWORD)
    assert "The trash is empty." in cli("trash", "list", *login).output
    domains.delete_domain(ctx, Actor("t"), "example.com")
    (entry,) = trash.list_trash(ctx)

    listed = cli("trash", "list", *login)
    assert listed.exit_code == 0, listed.output
    # The id stands whole on a line of its own, however narrow the terminal: it is for copying.
    lines = listed.output.splitlines()
    assert lines[0] == entry.id
    assert lines[1].startswith("    domain example.com, deleted ")
    assert lines[1].endswith(" UTC, 1 mailbox, mail kept")

    restored = cli("trash", "restore", entry.id, *login)
    assert restored.exit_code == 0, restored.output
    assert "Restored the domain example.com (1 mailboxes)." in restored.output
    assert (ctx.settings.mail_root_path / "example.com" / "a" / MESSAGE).read_bytes() == b"hello"
    with ctx.uow() as uow:
        assert uow.users.by_email("a@example.com") is not None

    again = cli("trash", "restore", entry.id, *login)
    assert again.exit_code == 4
    assert "trash" in again.output
    hostile = cli("trash", "restore", "../etc", *login)
    assert hostile.exit_code == 2
    refused = cli("trash", "list", "--url", server.url, MAILCTL_TOKEN="not-a-token")
    assert refused.exit_code == 3

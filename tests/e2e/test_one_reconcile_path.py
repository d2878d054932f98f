"""A change made with the CLI and the same change made through the API render the same files.

Both entry points build a Context whose services reconcile after each committed change;
nothing has to be registered for it. Each side has its own data folder and database.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from tests.backends import fresh_database
from tests.conftest import LiveServer
from typer.testing import CliRunner

from mailctl.cli.main import app

Cli = Callable[..., Result]
DOMAINS = ("example.com", "other.example")


@pytest.fixture
def cli(backend: str, tmp_path: Path) -> Iterator[Cli]:
    """``mailctl`` run in this process against its own data folder and database."""
    own = tmp_path / "cli"
    own.mkdir()
    with fresh_database(backend, own) as url:
        env = {
            "MAILCTL_DATA_DIR": str(own / "data"),
            "MAILCTL_DATABASE_URL": url,
            "MAILCTL_ADMIN_PASSWORD": "admin-password-1",
        }
        runner = CliRunner()

        def invoke(*args: str) -> Result:
            result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
            assert result.exit_code == 0, result.output
            return result

        invoke("init")
        yield invoke


def rendered(opendkim: Path) -> dict[str, str]:
    """The OpenDKIM files under ``opendkim``: tables as text (its path made relative), keys
    by name only (each side generated its own key)."""
    files: dict[str, str] = {}
    for path in sorted(opendkim.rglob("*")):
        name = str(path.relative_to(opendkim))
        if not path.is_file() or name.startswith("."):
            continue
        if name.startswith("keys/"):
            files[name] = "a private key" if "PRIVATE KEY" in path.read_text() else "?"
        else:
            files[name] = path.read_text().replace(str(opendkim), "<opendkim>")
    return files


def test_cli_and_api_render_the_same_opendkim_files(
    cli: Cli, server: LiveServer, api: httpx.Client, tmp_path: Path
) -> None:
    """Adding domains with DKIM keys, then removing one, leaves the same files either way;
    `mailctl domain rm` takes the removed domain's lines and key out of OpenDKIM's files."""
    for domain in DOMAINS:
        cli("domain", "add", domain)
        cli("dkim", "add", domain, "--key-type", "ed25519", "--selector", "s1")
        added = api.post("/domains", files={"domain": (None, domain)})
        assert added.status_code == 200, added.text
        keyed = api.post(
            "/dkim/add-new-domain",
            files={
                "domain": (None, domain),
                "key_type": (None, "ed25519"),
                "selector": (None, "s1"),
            },
        )
        assert keyed.status_code == 200, keyed.text

    api_files = server.ctx.settings.opendkim_path
    cli_files = tmp_path / "cli" / "data" / "opendkim"
    both = rendered(cli_files)
    assert both == rendered(api_files)
    assert "example.com" in both["KeyTable"]
    assert "keys/example.com/s1.private" in both

    cli("domain", "rm", "example.com", "--yes")
    removed = api.delete("/domain", params={"domain": "example.com"})
    assert removed.status_code == 200, removed.text

    after = rendered(cli_files)
    assert after == rendered(api_files)
    for table in ("KeyTable", "SigningTable"):
        assert "example.com" not in after[table]
        assert "other.example" in after[table]
    assert not any(name.startswith("keys/example.com/") for name in after)
    assert "keys/other.example/s1.private" in after

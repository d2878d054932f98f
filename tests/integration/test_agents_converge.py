"""Two agents on two hosts against one PostgreSQL database render the same files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from tests import pki
from tests.conftest import LiveServer
from typer.testing import CliRunner

from mailctl.cli.main import app
from mailctl.config import Settings
from mailctl.domain import dkim
from mailctl.services import agent
from mailctl.services.context import Context
from mailctl.services.reconcile import LOCK_NAME

# A fleet shares one PostgreSQL database; the fixtures' database is made on it here.
pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


def self_signed(hostname: str) -> tuple[str, str, datetime]:
    """A certificate and key PEM for ``hostname`` valid for 90 days."""
    now = datetime.now(UTC)
    not_after = (now + timedelta(days=90)).replace(microsecond=0)
    cert, key = pki.self_signed(
        hostname, not_before=now - timedelta(minutes=1), not_after=not_after
    )
    return cert.decode(), key.decode(), not_after


def snapshot(settings: Settings) -> dict[str, tuple[int, bytes]]:
    """Every rendered file under a host's roots: mode and bytes, with the root made neutral.

    KeyTable names key files by absolute path, so each host's own root is replaced by a
    placeholder; on a real fleet every node uses the same paths and the bytes are equal.
    """
    files: dict[str, tuple[int, bytes]] = {}
    for label, root in (("opendkim", settings.opendkim_path), ("tls", settings.tls_path)):
        for path in sorted(root.rglob("*")):
            if path.is_file() and path.name != LOCK_NAME:
                content = path.read_bytes().replace(str(root).encode(), f"<{label}>".encode())
                files[f"{label}/{path.relative_to(root)}"] = (path.stat().st_mode, content)
    return files


def host(tmp_path: Path, name: str, database_url: str) -> Settings:
    return Settings(data_dir=tmp_path / name, database_url=database_url)


def cli(settings: Settings, *args: str) -> tuple[int, str]:
    env = {
        "MAILCTL_DATA_DIR": str(settings.data_dir),
        "MAILCTL_DATABASE_URL": settings.database_url,
    }
    result = CliRunner().invoke(app, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.output


def test_two_agents_converge(
    api: httpx.Client, server: LiveServer, database_url: str, tmp_path: Path
) -> None:
    """Changes made through the API reach both hosts byte for byte, and a rerun changes nothing."""
    node_a = host(tmp_path, "node-a", database_url)
    node_b = host(tmp_path, "node-b", database_url)
    ctx_b = Context.from_settings(node_b)
    try:
        chain, key, not_after = self_signed("mx.example.com")
        with server.ctx.uow() as uow:
            uow.certificates.put("mx.example.com", chain, key, not_after, "upload")
            uow.commit()
        for domain in ("a.example", "b.example"):
            assert api.post("/domains", data={"domain": domain}).status_code == 200
        api.post("/dkim/add-new-domain", data={"domain": "a.example"})
        b_key = api.post(
            "/dkim/add-new-domain", data={"domain": "b.example", "key_type": "ed25519"}
        ).json()

        code, output = cli(node_a, "agent", "--once")
        assert code == 0, output
        assert "wrote" in output and "KeyTable" in output
        run_b = agent.run_once(ctx_b)
        assert run_b.ok and run_b.reconcile.report.changed

        rendered = snapshot(node_a)
        assert rendered == snapshot(node_b) == snapshot(server.ctx.settings)
        assert "opendkim/keys/a.example/mail.private" in rendered
        assert rendered["tls/mx.example.com/fullchain.pem"][1] == chain.encode()
        assert rendered["tls/mx.example.com/privkey.pem"][0] & 0o777 == 0o600
        assert rendered["opendkim/SigningTable"][1] == (
            b"*@a.example mail._domainkey.a.example\n*@b.example mail._domainkey.b.example\n"
        )

        code, output = cli(node_a, "agent", "--once")
        assert (code, "up to date" in output) == (0, True), output
        assert not agent.run_once(ctx_b).reconcile.report.changed

        assert api.request("DELETE", "/domain", data={"domain": "a.example"}).status_code == 200
        rotated = api.post(
            "/dkim/add-new-domain", data={"domain": "b.example", "rotate": "true"}
        ).json()
        assert rotated["dns"]["value"] != b_key["dns"]["value"]

        code, output = cli(node_a, "reconcile")
        assert code == 0, output
        assert "deleted" in output and "a.example" in output
        assert agent.run_once(ctx_b).reconcile.report.changed

        rendered = snapshot(node_a)
        assert rendered == snapshot(node_b) == snapshot(server.ctx.settings)
        assert not any("a.example" in path for path in rendered)
        assert b"a.example" not in rendered["opendkim/KeyTable"][1]
        # The rotation signs under a new selector; the retired key's file is gone.
        assert rotated["selector"] != "mail"
        assert "opendkim/keys/b.example/mail.private" not in rendered
        new_key = rendered[f"opendkim/keys/b.example/{rotated['selector']}.private"][1].decode()
        assert dkim.public_record(new_key) == rotated["dns"]["value"]

        for settings in (node_a, node_b):
            code, output = cli(settings, "reconcile")
            last_line = output.strip().splitlines()[-1]
            assert (code, last_line) == (0, "This host's files are up to date.")
    finally:
        ctx_b.close()

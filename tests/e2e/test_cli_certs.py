"""`mailctl cert upload|status`: the same certificate services, with exit codes."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result
from tests.pki import openssl_signed, self_signed
from typer.testing import CliRunner

from mailctl.cli.main import app

# What these tests check does not depend on the database: once, on SQLite (tests/README.md).
ONCE_ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"])

Run = Callable[..., Result]


@pytest.fixture
def run(database_url: str, tmp_path: Path) -> Run:
    """Invoke the CLI against this test's database, initialised first."""
    runner = CliRunner()
    env = {
        "MAILCTL_DATA_DIR": str(tmp_path / "data"),
        "MAILCTL_DATABASE_URL": database_url,
        "MAILCTL_ADMIN_PASSWORD": "init-password-1",
        "MAILCTL_PROBE_PRIVATE_TARGETS": "127.0.0.1",  # live checks of the test's own ports
    }

    def invoke(*args: str) -> Result:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    assert invoke("init").exit_code == 0
    return invoke


def _write_pair(folder: Path, name: str, days: float) -> tuple[Path, Path]:
    cert, key = self_signed(name, days=days)
    cert_path, key_path = folder / f"{name}.crt", folder / f"{name}.key"
    cert_path.write_bytes(cert)
    key_path.write_bytes(key)
    return cert_path, key_path


def test_upload_then_status(run: Run, tmp_path: Path) -> None:
    """An uploaded pair is installed and shows in the status table and the host look-up."""
    cert, key = _write_pair(tmp_path, "mail.example.com", days=33.5)
    uploaded = run("cert", "upload", str(cert), str(key))
    assert uploaded.exit_code == 0, uploaded.output
    assert "Installed the certificate mail.example.com" in uploaded.output
    assert "33 days left" in uploaded.output
    assert (tmp_path / "data" / "tls" / "mail.example.com" / "privkey.pem").stat().st_mode & (
        0o777
    ) == 0o600
    table = run("cert", "status")
    assert table.exit_code == 0, table.output
    assert "mail.example.com" in table.output and "upload" in table.output
    one = run("cert", "status", "mail.example.com")
    assert one.exit_code == 0, one.output
    assert "mail.example.com: 33 days left" in one.output
    assert "stored as mail.example.com" in one.output


@ONCE_ON_SQLITE
def test_upload_refusals_exit_with_input_error(run: Run, tmp_path: Path) -> None:
    """A key that does not match, or a missing file, exits 2 with the reason; nothing stored."""
    cert, _ = _write_pair(tmp_path, "mail.example.com", days=30)
    _, other_key = _write_pair(tmp_path, "other.example.com", days=30)
    mismatch = run("cert", "upload", str(cert), str(other_key))
    assert mismatch.exit_code == 2
    assert "does not match" in mismatch.output
    missing = run("cert", "upload", str(tmp_path / "nope.crt"), str(other_key))
    assert missing.exit_code == 2
    assert "Cannot read the certificate file" in missing.output
    assert "mail.example.com" not in run("cert", "status").output


@ONCE_ON_SQLITE
def test_cn_only_localhost_certificate_and_a_sha1_one(run: Run, tmp_path: Path) -> None:
    """A CN-only localhost pair installs as localhost; a SHA-1-signed one exits 2 saying so."""
    cert, key = self_signed("localhost", san=False)
    (tmp_path / "cn.crt").write_bytes(cert)
    (tmp_path / "cn.key").write_bytes(key)
    uploaded = run("cert", "upload", str(tmp_path / "cn.crt"), str(tmp_path / "cn.key"))
    assert uploaded.exit_code == 0, uploaded.output
    assert "Installed the certificate localhost" in uploaded.output

    folder = tmp_path / "sha1"
    folder.mkdir()
    chain, sha1_key = openssl_signed(folder, "localhost", "sha1")
    (folder / "chain.pem").write_bytes(chain)
    (folder / "key.pem").write_bytes(sha1_key)
    refused = run("cert", "upload", str(folder / "chain.pem"), str(folder / "key.pem"))
    assert refused.exit_code == 2
    assert "signed with SHA-1, which clients refuse" in refused.output


@ONCE_ON_SQLITE
def test_status_of_an_unreachable_host_exits_upstream(run: Run) -> None:
    """A live look-up that is refused exits 9 with the reason, never a number of days."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run("cert", "status", "127.0.0.1", "--port", str(port))
    assert result.exit_code == 9
    assert f"Could not read a certificate from 127.0.0.1:{port}" in result.output
    assert "days left" not in result.output


@ONCE_ON_SQLITE
@pytest.mark.security(
    finding=11,
    claim="mailctl cert upload --name refuses a name the certificate is not valid for.",
)
def test_upload_under_an_uncovered_name_exits_with_input_error(run: Run, tmp_path: Path) -> None:
    """--name outside the certificate's names exits 2 with the names it is for; nothing stored."""
    cert, key = _write_pair(tmp_path, "mail.example.com", days=30)
    refused = run("cert", "upload", str(cert), str(key), "--name", "www.example.com")
    assert refused.exit_code == 2, refused.output
    assert "does not cover the name www.example.com" in refused.output
    assert "mail.example.com" in refused.output
    assert "www.example.com" not in run("cert", "status").output
    assert not (tmp_path / "data" / "tls" / "www.example.com").exists()
    stored = run("cert", "upload", str(cert), str(key), "--name", "mail.example.com")
    assert stored.exit_code == 0, stored.output

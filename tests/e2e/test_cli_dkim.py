"""The dkim, reconcile and agent commands: output, exit codes, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailctl.cli.main import app
from mailctl.domain import dkim
from mailctl.services.dkim import dated_selector

# The commands are thin; one backend is enough to check their output and exit codes.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "MAILCTL_DATA_DIR": str(tmp_path / "data"),
        "MAILCTL_DATABASE_URL": database_url,
        "MAILCTL_ADMIN_PASSWORD": "admin-password-1",
    }


@pytest.fixture
def run(env: dict[str, str]):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str, extra: dict[str, str] | None = None, input_text: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(
            app,
            list(args),
            env={**env, **(extra or {})},
            input=input_text,
            catch_exceptions=False,
        )

    assert invoke("init").exit_code == 0
    assert invoke("domain", "add", "example.com").exit_code == 0
    return invoke


def test_add_show_rotate(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """dkim add prints the record to publish, show repeats it, rotate prints a new one."""
    added = run("dkim", "add", "example.com", "--key-type", "ed25519", "--selector", "s1")
    assert added.exit_code == 0, added.output
    assert "Created a DKIM key for example.com." in added.output
    assert "name:  s1._domainkey.example.com" in added.output
    assert "type:  TXT" in added.output
    key_file = tmp_path / "data/opendkim/keys/example.com/s1.private"
    record = dkim.public_record(key_file.read_text())
    assert f"value: {record}" in added.output
    assert 's1._domainkey\tIN\tTXT\t( "v=DKIM1; h=sha256; k=ed25519; "' in added.output
    assert "PRIVATE" not in added.output

    shown = run("dkim", "show", "example.com")
    assert shown.exit_code == 0
    assert f"value: {record}" in shown.output

    before = dated_selector("mail", set())
    rotated = run("dkim", "rotate", "example.com")
    assert rotated.exit_code == 0, rotated.output
    new = next(
        s for s in (before, dated_selector("mail", set())) if f"selector {s}." in rotated.output
    )
    assert (
        f"Rotated the DKIM key of example.com to the new selector {new}. The previous key (s1) "
        "is retired"
    ) in rotated.output
    assert "mailctl dkim rm example.com s1" in rotated.output
    assert record not in rotated.output
    new_file = tmp_path / f"data/opendkim/keys/example.com/{new}.private"
    assert f"value: {dkim.public_record(new_file.read_text())}" in rotated.output
    assert not key_file.exists()  # OpenDKIM signs with the new key only
    listed = run("dkim", "list", "example.com")
    assert listed.exit_code == 0, listed.output
    assert "retired" in listed.output and "signing" in listed.output


def test_errors_have_exit_codes(run) -> None:  # type: ignore[no-untyped-def]
    """An unknown domain exits 4, a bad key type 2, each with one clear line."""
    missing = run("dkim", "show", "nowhere.example")
    assert missing.exit_code == 4
    assert "The domain nowhere.example does not exist." in missing.output
    bad = run("dkim", "add", "example.com", "--key-type", "dsa")
    assert bad.exit_code == 2
    assert "Unknown DKIM key type 'dsa'" in bad.output


def test_reconcile_exits_non_zero_when_a_reload_fails(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """reconcile reports a failed reload and exits 8; once the reload works it exits 0."""
    failing = {"MAILCTL_RELOAD_ENABLED": "true", "MAILCTL_RELOAD_OPENDKIM": "false"}
    added = run("dkim", "add", "example.com", "--key-type", "ed25519", extra=failing)
    assert added.exit_code == 8
    assert "reload of opendkim failed" in added.output
    assert not (tmp_path / "data/opendkim/keys/example.com/mail.private").exists()
    again = run("reconcile", extra=failing)
    assert again.exit_code == 8
    working = {"MAILCTL_RELOAD_ENABLED": "true", "MAILCTL_RELOAD_OPENDKIM": "true"}
    fixed = run("reconcile", extra=working)
    assert fixed.exit_code == 0, fixed.output
    assert "reloaded opendkim" in fixed.output
    assert (tmp_path / "data/opendkim/keys/example.com/mail.private").exists()


def test_agent_stops_on_sigterm(run, env: dict[str, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """mailctl agent renders the files, keeps running, and exits 0 on SIGTERM."""
    assert run("dkim", "add", "example.com", "--key-type", "ed25519").exit_code == 0
    key_file = tmp_path / "data/opendkim/keys/example.com/mail.private"
    key_file.unlink()
    process = subprocess.Popen(
        [sys.executable, "-m", "mailctl", "agent", "--interval", "0.2"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not key_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert key_file.exists()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert process.returncode == 0, output
    assert "Agent stopped after" in output


def test_list_and_rm(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """dkim list shows signing and retired keys; dkim rm deletes one and says what it meant."""
    run("dkim", "add", "example.com", "--key-type", "ed25519", "--selector", "s1")
    run("dkim", "rotate", "example.com", "--selector", "s2")
    listed = run("dkim", "list", "example.com")
    assert listed.exit_code == 0, listed.output
    rows = [
        [cell.strip() for cell in line.strip("│ ").split("│")]
        for line in listed.output.splitlines()
        if "._domainkey." in line
    ]
    assert rows == [
        ["s2", "ed25519", "signing", "s2._domainkey.example.com"],
        ["s1", "ed25519", "retired", "s1._domainkey.example.com"],
    ]

    refused = run("dkim", "rm", "example.com", "s1", input_text="n\n")
    assert refused.exit_code == 1
    assert "s1" in run("dkim", "list", "example.com").output

    removed = run("dkim", "rm", "example.com", "s1", "--yes")
    assert removed.exit_code == 0, removed.output
    assert "Deleted the DKIM key s1 of example.com." in removed.output
    assert "no longer signed" not in removed.output

    signing = run("dkim", "rm", "example.com", "s2", "--yes")
    assert signing.exit_code == 0, signing.output
    assert "mail from example.com is no longer signed" in signing.output
    assert not (tmp_path / "data/opendkim/keys/example.com/s2.private").exists()
    assert "example.com has no DKIM key." in run("dkim", "list", "example.com").output

    missing = run("dkim", "rm", "example.com", "s2", "--yes")
    assert missing.exit_code == 4
    assert "The domain example.com has no DKIM key with the selector s2." in missing.output

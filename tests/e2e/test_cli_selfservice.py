"""`mailctl user forward` and `mailctl user autoreply`: the settings, their Sieve script,
and the refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailctl.cli.main import app

# Arguments, output and exit codes; the services they call are tested per backend through
# the API (tests/api/test_api_self.py). Once, on SQLite (tests/README.md).
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def run(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {
        "MAILCTL_DATA_DIR": str(tmp_path / "data"),
        "MAILCTL_DATABASE_URL": database_url,
        "MAILCTL_ADMIN_PASSWORD": "admin-password-1",
    }

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env=env, input=input, catch_exceptions=False)

    assert invoke("init").exit_code == 0
    made = invoke(
        "domain", "add", "example.com", "--user", "alice@example.com", "--password", "pw-alice-12"
    )
    assert made.exit_code == 0, made.output
    return invoke


def _script(tmp_path: Path) -> Path:
    return tmp_path / "data" / "sieve" / "example.com" / "alice.sieve"


def test_forward_on_show_and_off(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`user forward EMAIL DEST --keep-copy` forwards, `user forward EMAIL` shows it,
    `--off` stops it and removes the script."""
    on = run("user", "forward", "alice@example.com", "bob@elsewhere.test", "--keep-copy")
    assert on.exit_code == 0, on.output
    assert "to bob@elsewhere.test (a copy stays)" in on.output
    assert 'redirect :copy "bob@elsewhere.test";' in _script(tmp_path).read_text()
    shown = run("user", "forward", "alice@example.com")
    assert "to bob@elsewhere.test" in shown.output
    off = run("user", "forward", "alice@example.com", "--off")
    assert off.exit_code == 0, off.output
    assert "Forwarding: off" in off.output
    assert not _script(tmp_path).exists()


def test_forward_refusals(run) -> None:  # type: ignore[no-untyped-def]
    """Forwarding to itself, --off with addresses, an unknown mailbox: exit codes, messages."""
    itself = run("user", "forward", "alice@example.com", "alice@example.com")
    assert itself.exit_code != 0 and "itself" in itself.output
    both = run("user", "forward", "alice@example.com", "bob@elsewhere.test", "--off")
    assert both.exit_code != 0 and "not both" in both.output
    missing = run("user", "forward", "nobody@example.com", "bob@elsewhere.test")
    assert missing.exit_code != 0 and "does not exist" in missing.output


def test_autoreply_from_a_file_and_stdin(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`user autoreply` takes the body from a file or standard input, with dates; --off."""
    body = tmp_path / "away.txt"
    body.write_text('Away "until" Monday.\n.\nBack then.\n')
    on = run(
        "user",
        "autoreply",
        "alice@example.com",
        "--subject",
        "Away",
        "--body-file",
        str(body),
        "--from",
        "2026-12-20",
        "--until",
        "2999-01-03",
    )
    assert on.exit_code == 0, on.output
    assert "Auto-reply: on from 2026-12-20 until 2999-01-03" in on.output
    script = _script(tmp_path).read_text()
    assert '"Away \\"until\\" Monday.\n.\nBack then."' in script
    again = run(
        "user",
        "autoreply",
        "alice@example.com",
        "--subject",
        "Gone",
        "--body-file",
        "-",
        input="From standard input.\n",
    )
    assert again.exit_code == 0, again.output
    assert '"From standard input."' in _script(tmp_path).read_text()
    off = run("user", "autoreply", "alice@example.com", "--off")
    assert off.exit_code == 0 and "Auto-reply: off" in off.output
    assert not _script(tmp_path).exists()
    bad = run("user", "autoreply", "alice@example.com", "--subject", "x", "--until", "soon")
    assert bad.exit_code != 0 and "ISO 8601" in bad.output

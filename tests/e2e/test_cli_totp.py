"""``mailctl admin totp enrol|confirm|off|status|require`` on the host."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailctl.cli.main import app
from mailctl.config import Settings
from mailctl.domain import totp
from mailctl.errors import SecondFactorError
from mailctl.services import auth
from mailctl.services.context import Context

# Commands, output and exit codes; the SQL below them is tested on every backend in
# tests/unit/test_two_factor.py and tests/api/test_api_totp.py: once, on SQLite.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])

PASSWORD = "first-admin-password-1"


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "MAILCTL_DATA_DIR": str(tmp_path / "data"),
        "MAILCTL_DATABASE_URL": database_url,
        "MAILCTL_ADMIN_PASSWORD": PASSWORD,
    }


@pytest.fixture
def run(env: dict[str, str]):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    assert invoke("init").exit_code == 0
    return invoke


@pytest.fixture
def ctx(env: dict[str, str], run) -> Iterator[Context]:  # type: ignore[no-untyped-def]
    context = Context.from_settings(
        Settings(data_dir=env["MAILCTL_DATA_DIR"], database_url=env["MAILCTL_DATABASE_URL"])
    )
    yield context
    context.close()


def _secret(output: str) -> bytes:
    found = re.search(r"^secret: ([A-Z2-7]+)$", output, re.MULTILINE)
    assert found, output
    return totp.decode_secret(found.group(1))


def test_enrol_confirm_status_off(run, ctx: Context) -> None:  # type: ignore[no-untyped-def]
    """Enrol prints the secret, URI and a QR code; confirm prints 10 recovery codes; then a
    login needs a code; off turns it off again."""
    enrolled = run("admin", "totp", "enrol", "admin")
    assert enrolled.exit_code == 0, enrolled.output
    assert "▀" in enrolled.output and "▄" in enrolled.output
    assert "uri:    otpauth://totp/mailctl:admin?secret=" in enrolled.output
    secret = _secret(enrolled.output)
    assert "not confirmed" in run("admin", "totp", "status", "admin").output

    step = totp.time_step(time.time())
    confirmed = run("admin", "totp", "confirm", "admin", totp.hotp(secret, step))
    assert confirmed.exit_code == 0, confirmed.output
    codes = re.findall(r"^  ([a-z2-7]{4}(?:-[a-z2-7]{4}){3})$", confirmed.output, re.MULTILINE)
    assert len(codes) == 10
    status = run("admin", "totp", "status", "admin").output
    assert "admin: two-factor login on, 10 recovery code(s) left." in status
    assert "not required" in status

    with pytest.raises(SecondFactorError):
        auth.login_with_code(ctx, "admin", PASSWORD, "192.0.2.1")
    assert auth.login_with_code(ctx, "admin", PASSWORD, "192.0.2.1", None, codes[0]).token

    off = run("admin", "totp", "off", "admin")
    assert off.exit_code == 0
    assert "Two-factor login is off for admin." in off.output
    assert auth.login_with_code(ctx, "admin", PASSWORD, "192.0.2.1").token
    assert "admin: two-factor login off." in run("admin", "totp", "status", "admin").output


def test_require_on_and_off(run, ctx: Context) -> None:  # type: ignore[no-untyped-def]
    """require on names the admins not enrolled; their login may then only enrol."""
    on = run("admin", "totp", "require", "on")
    assert on.exit_code == 0
    assert "Not enrolled yet (their next login may only enrol): admin." in on.output
    assert auth.login_with_code(ctx, "admin", PASSWORD, "192.0.2.1").enrol_only
    assert "is required on this server" in run("admin", "totp", "status", "admin").output
    off = run("admin", "totp", "require", "off")
    assert "no longer required" in off.output
    assert not auth.login_with_code(ctx, "admin", PASSWORD, "192.0.2.1").enrol_only


def test_errors_are_one_line_and_an_exit_code(run) -> None:  # type: ignore[no-untyped-def]
    """An unknown admin exits 4, a wrong code or word 2, confirming twice 5."""
    unknown = run("admin", "totp", "enrol", "nobody")
    assert unknown.exit_code == 4
    assert "There is no admin nobody." in unknown.output
    assert run("admin", "totp", "status", "nobody").exit_code == 4
    assert run("admin", "totp", "confirm", "admin", "123456").exit_code == 4  # not enrolled
    secret = _secret(run("admin", "totp", "enrol", "admin").output)
    now = totp.time_step(time.time())
    taken = {totp.hotp(secret, s) for s in range(now - 2, now + 3)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in taken)
    refused = run("admin", "totp", "confirm", "admin", wrong)
    assert refused.exit_code == 2
    assert "not correct" in refused.output
    assert run("admin", "totp", "confirm", "admin", "12ab").exit_code == 2
    assert run("admin", "totp", "confirm", "admin", totp.hotp(secret, now)).exit_code == 0
    assert run("admin", "totp", "confirm", "admin", totp.hotp(secret, now)).exit_code == 5
    assert run("admin", "totp", "enrol", "admin").exit_code == 5
    maybe = run("admin", "totp", "require", "maybe")
    assert maybe.exit_code == 2
    assert "on or off" in maybe.output

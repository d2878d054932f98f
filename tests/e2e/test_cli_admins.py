"""``mailctl admin passwd|tokens|revoke`` on the host, against the configured database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailctl.cli.main import app
from mailctl.config import Settings
from mailctl.domain.passwords import verify_password
from mailctl.errors import AuthError
from mailctl.services import auth
from mailctl.services.context import Context

# What these tests check does not depend on the database: once, on SQLite (tests/README.md).
ONCE_ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"])

FIRST_PASSWORD = "first-admin-password-1"
NEW_PASSWORD = "new-admin-password-22"
Figure = Callable[[str, object], None]


@pytest.fixture
def env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "MAILCTL_DATA_DIR": str(tmp_path / "data"),
        "MAILCTL_DATABASE_URL": database_url,
        "MAILCTL_ADMIN_PASSWORD": FIRST_PASSWORD,
    }


@pytest.fixture
def run(env: dict[str, str]):  # type: ignore[no-untyped-def]
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env=env, input=input, catch_exceptions=False)

    assert invoke("init").exit_code == 0
    return invoke


@pytest.fixture
def ctx(env: dict[str, str], run) -> Iterator[Context]:  # type: ignore[no-untyped-def]
    context = Context.from_settings(
        Settings(data_dir=env["MAILCTL_DATA_DIR"], database_url=env["MAILCTL_DATABASE_URL"])
    )
    yield context
    context.close()


def stored_password(ctx: Context) -> str:
    with ctx.uow() as uow:
        admin = uow.admins.by_username("admin")
        assert admin is not None
        return admin.password


@pytest.mark.security(
    finding=11,
    claim="`mailctl admin passwd` sets an admin's password from a prompt or standard input, "
    "and every token issued before is refused.",
)
def test_passwd_from_stdin_revokes_tokens(run, ctx: Context, figure: Figure) -> None:  # type: ignore[no-untyped-def]
    """--password-stdin sets the password; the tokens of before get AuthError afterwards."""
    tokens = [auth.login(ctx, "admin", FIRST_PASSWORD, "192.0.2.7") for _ in range(2)]
    result = run("admin", "passwd", "--password-stdin", input=NEW_PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    assert "2 token(s) no longer work" in result.output
    assert NEW_PASSWORD not in result.output
    assert verify_password(NEW_PASSWORD, stored_password(ctx))
    refused = 0
    for token in tokens:
        with pytest.raises(AuthError, match="password changed"):
            auth.authenticate(ctx, token)
        refused += 1
    figure("tokens refused after `admin passwd`", refused)


@ONCE_ON_SQLITE
def test_passwd_prompts_twice(run, ctx: Context) -> None:  # type: ignore[no-untyped-def]
    """Without --password-stdin the new password is prompted for, with a confirmation."""
    result = run("admin", "passwd", "admin", input=f"{NEW_PASSWORD}\n{NEW_PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert NEW_PASSWORD not in result.output
    assert verify_password(NEW_PASSWORD, stored_password(ctx))


@ONCE_ON_SQLITE
def test_passwd_takes_no_password_argument(run, ctx: Context) -> None:  # type: ignore[no-untyped-def]
    """There is no --password option: a password on the command line is refused."""
    result = run("admin", "passwd", "--password", NEW_PASSWORD)
    assert result.exit_code == 2
    assert verify_password(FIRST_PASSWORD, stored_password(ctx))


@ONCE_ON_SQLITE
@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (("admin", "passwd", "--password-stdin"), "short\n", 2, "too short"),
        (("admin", "passwd", "ghost", "--password-stdin"), NEW_PASSWORD + "\n", 4, "no admin"),
        (("admin", "tokens", "ghost"), None, 4, "no admin"),
        (("admin", "revoke"), None, 2, "--id ID or --all"),
        (("admin", "revoke", "--id", "nope"), None, 4, "no active token"),
    ],
)
def test_admin_command_errors(
    run, args: tuple[str, ...], stdin: str | None, code: int, message: str
) -> None:  # type: ignore[no-untyped-def]
    """Bad input, unknown admins and unknown tokens: one line and the exit code of their kind."""
    result = run(*args, input=stdin)
    assert result.exit_code == code, result.output
    assert message in result.output


def test_tokens_and_revoke(run, ctx: Context) -> None:  # type: ignore[no-untyped-def]
    """`admin tokens` lists the ids; `revoke --id` refuses that one; `revoke --all` the rest."""
    first = auth.login(ctx, "admin", FIRST_PASSWORD, "192.0.2.7", "agent-one")
    second = auth.login(ctx, "admin", FIRST_PASSWORD, "192.0.2.8", "agent-two")
    first_id = auth.authenticate(ctx, first).token_id
    assert first_id is not None
    listing = run("admin", "tokens")
    assert listing.exit_code == 0, listing.output
    assert first_id in listing.output
    assert first not in listing.output and second not in listing.output
    revoked = run("admin", "revoke", "--id", first_id)
    assert revoked.exit_code == 0, revoked.output
    with pytest.raises(AuthError, match="revoked"):
        auth.authenticate(ctx, first)
    assert auth.authenticate(ctx, second).username == "admin"
    every = run("admin", "revoke", "admin", "--all")
    assert every.exit_code == 0, every.output
    assert "Revoked 1 token(s)" in every.output
    with pytest.raises(AuthError):
        auth.authenticate(ctx, second)
    assert first_id not in run("admin", "tokens").output

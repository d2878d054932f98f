"""``mailctl admin`` on the host, against the configured database: passwords and tokens,
and the admins themselves (create, list, show, delete, disable, enable, role, grant)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from mailctl.cli.main import app
from mailctl.config import Settings
from mailctl.domain.passwords import verify_password
from mailctl.errors import AuthError
from mailctl.services import auth, domains
from mailctl.services.context import Actor, Context

# What these tests check does not depend on the database: once, on SQLite (tests/README.md).
ONCE_ON_SQLITE = pytest.mark.parametrize("backend", ["sqlite"])

FIRST_PASSWORD = "first-admin-password-1"
NEW_PASSWORD = "new-admin-password-22"
ALICE_PASSWORD = "alice-password-333"
HOST = Actor("test")
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


@pytest.fixture
def two_domains(ctx: Context) -> None:
    """mine.example (id 1) and other.example (id 2), one mailbox each."""
    domains.create_domain(ctx, HOST, "mine.example", "a@mine.example", "password-a-1")
    domains.create_domain(ctx, HOST, "other.example", "b@other.example", "password-b-1")


def _login(anon: httpx.Client, username: str, password: str) -> dict[str, str]:
    answer = anon.post("/auth", data={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return {"Auth-token": answer.json()["token"]}


def _listed(anon: httpx.Client, headers: dict[str, str]) -> list[str]:
    answer = anon.get("/domains", headers=headers)
    assert answer.status_code == 200, answer.text
    return [d["name"] for d in answer.json()["domains"]]


def test_a_domain_admin_made_on_the_command_line_sees_only_its_domains(
    run, two_domains: None, anon: httpx.Client
) -> None:  # type: ignore[no-untyped-def]
    """`admin create --domain` makes a domain admin who logs in and sees only that domain;
    grant, ungrant, role, disable, enable and delete change what its token may do at once."""
    made = run(
        "admin",
        "create",
        "alice",
        "--domain",
        "mine.example",
        "--password-stdin",
        input=ALICE_PASSWORD + "\n",
    )
    assert made.exit_code == 0, made.output
    assert "Created the domain admin alice (mine.example)." in made.output
    assert ALICE_PASSWORD not in made.output
    alice = _login(anon, "alice", ALICE_PASSWORD)
    assert _listed(anon, alice) == ["mine.example"]
    hidden = anon.get("/users/2", headers=alice)
    assert hidden.status_code == 404
    assert hidden.json()["msg"] == "There is no domain with id 2."

    granted = run("admin", "grant", "alice", "other.example")
    assert granted.exit_code == 0, granted.output
    assert "alice now has: mine.example, other.example." in granted.output
    assert _listed(anon, alice) == ["mine.example", "other.example"]
    taken = run("admin", "ungrant", "alice", "other.example")
    assert taken.exit_code == 0, taken.output
    assert "alice now has: mine.example." in taken.output
    assert _listed(anon, alice) == ["mine.example"]

    listing = run("admin", "list")
    assert listing.exit_code == 0, listing.output
    rows = {line.split("│")[1].strip(): line for line in listing.output.splitlines() if "│" in line}
    assert "superadmin" in rows["admin"] and "every domain" in rows["admin"]
    assert "domain_admin" in rows["alice"] and "mine.example" in rows["alice"]
    assert "enabled" in rows["alice"]

    disabled = run("admin", "disable", "alice")
    assert disabled.exit_code == 0, disabled.output
    refused = anon.get("/domains", headers=alice)
    assert refused.status_code == 401
    assert "disabled" in refused.json()["msg"]
    assert "disabled" in run("admin", "show", "alice").output
    assert run("admin", "enable", "alice").exit_code == 0
    assert _listed(anon, alice) == ["mine.example"]

    promoted = run("admin", "role", "alice", "superadmin")
    assert promoted.exit_code == 0, promoted.output
    assert "alice is now a superadmin (every domain)." in promoted.output
    assert _listed(anon, alice) == ["mine.example", "other.example"]

    deleted = run("admin", "delete", "alice", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert "Deleted the admin alice." in deleted.output
    assert anon.get("/domains", headers=alice).status_code == 401
    assert "alice" not in run("admin", "list").output


@ONCE_ON_SQLITE
def test_create_prompts_twice_and_show_prints_the_admin(run, two_domains: None) -> None:  # type: ignore[no-untyped-def]
    """Without --password-stdin the password is prompted for with a confirmation, and never
    printed; `admin show` prints the role, status and domains."""
    args = ["create", "carol", "--role", "domain_admin", "--domain", "mine.example"]
    made = run(
        "admin", *args, "--domain", "other.example", input=f"{ALICE_PASSWORD}\n{ALICE_PASSWORD}\n"
    )
    assert made.exit_code == 0, made.output
    assert "Repeat for confirmation" in made.output
    assert ALICE_PASSWORD not in made.output
    shown = run("admin", "show", "carol")
    assert shown.exit_code == 0, shown.output
    fields = dict(line.split(None, 1) for line in shown.output.splitlines() if line.strip())
    assert {k: v.strip() for k, v in fields.items() if k != "created"} == {
        "username": "carol",
        "role": "domain_admin",
        "status": "enabled",
        "domains": "mine.example, other.example",
    }
    assert fields["created"].strip().endswith("UTC")


@ONCE_ON_SQLITE
def test_create_takes_no_password_argument(run) -> None:  # type: ignore[no-untyped-def]
    """There is no --password option for `admin create`: nothing is created with one."""
    result = run("admin", "create", "dave", "--password", ALICE_PASSWORD)
    assert result.exit_code == 2
    assert "dave" not in run("admin", "list").output


@ONCE_ON_SQLITE
def test_delete_asks_first(run, two_domains: None) -> None:  # type: ignore[no-untyped-def]
    """`admin delete` without --yes asks; answered no, the admin stays (exit 1)."""
    made = run("admin", "create", "erin", "--password-stdin", input=ALICE_PASSWORD + "\n")
    assert made.exit_code == 0, made.output
    assert "Created the superadmin erin (every domain)." in made.output
    answered_no = run("admin", "delete", "erin", input="n\n")
    assert answered_no.exit_code == 1
    assert "erin" in run("admin", "list").output


# Per backend: the count of enabled superadmins is SQL of its own (a boolean column, which
# each dialect stores and compares in its own way).
def test_the_last_superadmin_stays(run) -> None:  # type: ignore[no-untyped-def]
    """The last enabled superadmin can be neither deleted, disabled nor demoted: exit 5, one
    line that says why, and it is still an enabled superadmin."""
    for args in (
        ("delete", "admin", "--yes"),
        ("disable", "admin"),
        ("role", "admin", "domain_admin"),
    ):
        result = run("admin", *args)
        assert result.exit_code == 5, result.output
        assert result.output.strip().splitlines() == [
            "error: admin is the last enabled superadmin: make or enable another superadmin "
            "first, so that someone can still manage this server."
        ]
    shown = run("admin", "show", "admin").output
    assert "superadmin" in shown and "enabled" in shown


def test_a_second_superadmin_lets_the_first_go(run) -> None:  # type: ignore[no-untyped-def]
    """With another enabled superadmin, the first can be demoted and deleted; a disabled
    superadmin does not count."""
    made = run("admin", "create", "frank", "--password-stdin", input=ALICE_PASSWORD + "\n")
    assert made.exit_code == 0, made.output
    demoted = run("admin", "role", "admin", "domain_admin")
    assert demoted.exit_code == 0, demoted.output
    assert "admin is now a domain admin (no domain)." in demoted.output
    assert run("admin", "role", "admin", "superadmin").exit_code == 0
    assert run("admin", "disable", "frank").exit_code == 0
    refused = run("admin", "delete", "admin", "--yes")
    assert refused.exit_code == 5
    assert "admin is the last enabled superadmin" in refused.output
    assert run("admin", "enable", "frank").exit_code == 0
    assert run("admin", "delete", "admin", "--yes").exit_code == 0
    assert "frank is the last enabled superadmin" in run("admin", "disable", "frank").output


@ONCE_ON_SQLITE
@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (
            ("create", "bob", "--role", "king"),
            2,
            "The role must be one of: superadmin, domain_admin.",
        ),
        (
            ("create", "bob", "--role", "superadmin", "--domain", "mine.example"),
            2,
            "Only a domain admin is granted domains",
        ),
        (
            ("create", "bob", "--domain", "ghost.example"),
            4,
            "The domain ghost.example does not exist.",
        ),
        (("create", "bob", "--domain", "not a name"), 2, "must not contain spaces"),
        (("create", "two words"), 2, "without spaces"),
        (("create", "alice"), 5, "The admin alice exists already."),
        (("show", "ghost"), 4, "There is no admin ghost."),
        (("delete", "ghost", "--yes"), 4, "There is no admin ghost."),
        (("disable", "ghost"), 4, "There is no admin ghost."),
        (("enable", "ghost"), 4, "There is no admin ghost."),
        (("role", "alice", "king"), 2, "The role must be one of"),
        (("grant", "admin", "mine.example"), 2, "admin is a superadmin, which has every domain"),
        (("grant", "alice", "ghost.example"), 4, "The domain ghost.example does not exist."),
        (("grant", "ghost", "mine.example"), 4, "There is no admin ghost."),
        (("ungrant", "alice", "other.example"), 4, "other.example is not granted to alice."),
    ],
)
def test_admin_management_errors(
    run, ctx: Context, two_domains: None, args: tuple[str, ...], code: int, message: str
) -> None:  # type: ignore[no-untyped-def]
    """Bad roles, names and domains, unknown admins, duplicates: one line, its exit code."""
    from mailctl.services import admins

    admins.create_admin(ctx, HOST, "alice", ALICE_PASSWORD, "domain_admin", "mine.example")
    stdin = ALICE_PASSWORD + "\n" if args[0] == "create" else None
    extra = ("--password-stdin",) if args[0] == "create" else ()
    result = run("admin", *args, *extra, input=stdin)
    assert result.exit_code == code, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert message in lines[0]
    assert "bob" not in run("admin", "list").output


@ONCE_ON_SQLITE
def test_grant_needs_a_domain(run) -> None:  # type: ignore[no-untyped-def]
    """`admin grant NAME` without a domain is a usage error (exit 2) that names it."""
    result = run("admin", "grant", "admin")
    assert result.exit_code == 2
    assert "DOMAIN" in result.output

"""`mailctl user import`: mailboxes from a CSV, all or none, errors naming the line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailctl.cli.main import app
from mailctl.config import Settings
from mailctl.domain.passwords import hash_password, verify_password
from mailctl.services.context import Context

# Reading the CSV, messages and exit codes happen before and beside the database; the batch
# service beneath runs on every backend in tests/unit/test_services_batch.py.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def run(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {
        "MAILCTL_DATA_DIR": str(tmp_path / "data"),
        "MAILCTL_DATABASE_URL": database_url,
        "MAILCTL_ADMIN_PASSWORD": "",
    }

    def invoke(*args: str, input: str | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env=env, input=input, catch_exceptions=False)

    assert invoke("init").exit_code == 0
    assert invoke("domain", "add", "example.com").exit_code == 0
    return invoke


def stored(database_url: str, tmp_path: Path) -> dict[str, str]:
    ctx = Context.from_settings(Settings(data_dir=tmp_path / "data", database_url=database_url))
    try:
        with ctx.uow() as uow:
            domain = uow.domains.by_name("example.com")
            assert domain is not None
            return {u.email: u.password for u in uow.users.list_for_domain(domain.id)}
    finally:
        ctx.close()


def test_import_plain_passwords_from_a_file(run, tmp_path: Path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    """Each line becomes a mailbox whose password verifies; the count is printed."""
    csv_file = tmp_path / "users.csv"
    csv_file.write_text(
        'email,password\nann@example.com,pw-ann-123\nbob,"pw, with comma"\n\n'
        "Cat@Example.com,pw-cat-123\n",
        encoding="utf-8",
    )
    result = run("user", "import", str(csv_file), "--domain", "example.com")
    assert result.exit_code == 0, result.output
    assert "Created 3 mailboxes in example.com." in result.output
    rows = stored(database_url, tmp_path)
    assert sorted(rows) == ["ann@example.com", "bob@example.com", "cat@example.com"]
    assert verify_password("pw, with comma", rows["bob@example.com"])
    mail_root = Settings(data_dir=tmp_path / "data", database_url=database_url).mail_root_path
    assert (mail_root / "example.com" / "cat" / "new").is_dir()


def test_import_prehashed_from_stdin(run, tmp_path: Path, database_url: str) -> None:  # type: ignore[no-untyped-def]
    """``-`` reads standard input; a password_hash column keeps the hashes as given."""
    migrated = hash_password("from-the-old-server", "SHA512-CRYPT")
    text = f"email,password_hash\nold@example.com,{migrated}\n"
    result = run("user", "import", "-", "--domain", "example.com", input=text)
    assert result.exit_code == 0, result.output
    assert "Created 1 mailbox in example.com." in result.output
    assert stored(database_url, tmp_path) == {"old@example.com": migrated}


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        (
            "email,password\na@example.com,pw-123456\nb@example.com,short\n",
            2,
            "Line 3 (b@example.com): The password is too short",
        ),
        (
            "email,password\na@example.com,pw-123456\n\nb@other.org,pw-123456\n",
            2,
            "Line 4 (b@other.org): The address b@other.org does not belong",
        ),
        (
            'email,password\n"a@example.com","multi\nline pw"\nA@example.com,pw-123456\n',
            2,
            "Line 4 (a@example.com): The address is in the batch already, as entry 1.",
        ),
        ("email,pasword\na@example.com,x\n", 2, "Line 1: the header must be"),
        ("email\na@example.com\n", 2, "Line 1: the header needs a password"),
        ("email,password\na@example.com\n", 2, "Line 2: 1 values where the header names 2"),
        ("", 2, "The file is empty"),
        ("email,password\nadmin@example.com,pw-123456\n", 5, "exists already"),
    ],
)
def test_a_bad_line_imports_nothing(  # type: ignore[no-untyped-def]
    run, tmp_path: Path, database_url: str, text: str, code: int, message: str
) -> None:
    """A refused line exits with the usual code, names the line, and nothing is created."""
    run("user", "add", "admin@example.com", "--password", "pw-123456")
    result = run("user", "import", "-", "--domain", "example.com", input=text)
    assert result.exit_code == code, result.output
    # Rich wraps long lines at the console's width.
    assert message in result.output.replace("\n", " ")
    assert sorted(stored(database_url, tmp_path)) == ["admin@example.com"]


def test_unknown_domain_missing_file_and_not_utf8(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An unknown domain is exit 4; an unreadable or non-UTF-8 file is exit 2."""
    csv_file = tmp_path / "users.csv"
    csv_file.write_text("email,password\na@nowhere.example,pw-123456\n")
    assert run("user", "import", str(csv_file), "--domain", "nowhere.example").exit_code == 4
    missing = run("user", "import", str(tmp_path / "none.csv"), "--domain", "example.com")
    assert missing.exit_code == 2
    assert "Cannot read" in missing.output
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,password\nä@example.com,pw-123456\n".encode("latin-1"))
    assert run("user", "import", str(latin), "--domain", "example.com").exit_code == 2


def test_more_rows_than_a_batch_takes(run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A file over MAILCTL_MAX_BATCH_USERS is refused whole, saying to split it."""
    monkeypatch.setenv("MAILCTL_MAX_BATCH_USERS", "2")
    text = "email,password\n" + "".join(f"u{n}@example.com,pw-123456\n" for n in range(3))
    result = run("user", "import", "-", "--domain", "example.com", input=text)
    assert result.exit_code == 2, result.output
    assert "more than 2 mailboxes" in result.output


def test_import_with_a_quota_column(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An optional quota column gives each mailbox its quota (empty: none); a bad one
    names its line and imports nothing."""
    csv_file = tmp_path / "users.csv"
    csv_file.write_text(
        "email,password,quota\nann@example.com,pw-ann-123,2G\nbob@example.com,pw-bob-123,\n",
        encoding="utf-8",
    )
    result = run("user", "import", str(csv_file), "--domain", "example.com")
    assert result.exit_code == 0, result.output
    listing = run("user", "list", "example.com").output
    assert "2 GiB" in listing and "unlimited" in listing
    csv_file.write_text("email,password,quota\ncat@example.com,pw-cat-123,lots\n")
    bad = run("user", "import", str(csv_file), "--domain", "example.com")
    assert bad.exit_code == 2
    assert "Line 2 (cat@example.com): The quota must be" in bad.output

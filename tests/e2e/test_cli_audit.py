"""`mailctl audit`: the log as a table or JSON lines, filtered, with the next page's command."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailctl.cli.main import app

# Once, on SQLite: options, output and exit codes; the SQL behind them is GET /audit's,
# tested on every backend in tests/api/test_api_audit.py.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def run(database_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {
        "MAILCTL_DATA_DIR": str(tmp_path / "data"),
        "MAILCTL_DATABASE_URL": database_url,
        "MAILCTL_ADMIN_PASSWORD": "first-admin-pw-1",
    }

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    assert invoke("init").exit_code == 0
    return invoke


def test_a_table_of_the_changes_newest_first(run) -> None:  # type: ignore[no-untyped-def]
    """Each change is a row: id, time, who, what, target, domain; the newest on top."""
    assert run("domain", "add", "example.com").exit_code == 0
    assert run("user", "add", "a@example.com", "--password", "pw-a-1234567").exit_code == 0
    shown = run("audit")
    assert shown.exit_code == 0, shown.output
    lines = [line for line in shown.output.splitlines() if "create_" in line]
    assert len(lines) == 3
    assert "a@example.com" in lines[0] and "create_user" in lines[0]
    assert "create_domain" in lines[1]
    assert "create_admin" in lines[2] and "init" in lines[2]
    assert "cli:" in lines[0]
    assert "More entries" not in shown.output


def test_json_lines_and_filters(run) -> None:  # type: ignore[no-untyped-def]
    """--json prints one entry per line, as the API answers it; the filters narrow them."""
    assert run("domain", "add", "one.example").exit_code == 0
    assert run("domain", "add", "two.example").exit_code == 0
    shown = run("audit", "--json", "--domain", "two.example")
    assert shown.exit_code == 0, shown.output
    (entry,) = [json.loads(line) for line in shown.output.splitlines()]
    assert {k: entry[k] for k in ("action", "target", "domain", "client_address")} == {
        "action": "create_domain",
        "target": "two.example",
        "domain": "two.example",
        "client_address": None,
    }
    assert entry["at"].endswith("+00:00")
    actions = run("audit", "--json", "--action", "create_domain", "--since", "1970-01-01T00:00Z")
    assert [json.loads(line)["target"] for line in actions.output.splitlines()] == [
        "two.example",
        "one.example",
    ]
    assert run("audit", "--json", "--until", "86400").output == ""
    assert run("audit", "--admin", "nobody").output.strip() == "No audit entries match."


def test_a_page_ends_with_the_command_for_the_next(run) -> None:  # type: ignore[no-untyped-def]
    """With more entries than --limit, the command that shows the next page is printed, and
    following it walks the rest; with --json the hint goes to standard error."""
    for n in range(4):
        assert run("domain", "add", f"d{n}.example").exit_code == 0
    first = run("audit", "--limit", "2", "--action", "create_domain")
    assert first.exit_code == 0, first.output
    hint = first.output.strip().splitlines()[-1]
    assert hint.startswith("More entries: mailctl audit ")
    words = shlex.split(hint.removeprefix("More entries: "))
    assert words[2:] == ["--action", "create_domain", "--limit", "2", "--after", "4"]
    second = run(*words[1:])
    assert "d1.example" in second.output and "d0.example" in second.output
    assert "d3.example" not in second.output
    assert "More entries" not in second.output

    as_json = run("audit", "--json", "--limit", "1")
    assert len(as_json.stdout.splitlines()) == 1
    json.loads(as_json.stdout)
    assert "More entries: mailctl audit --limit 1 --after" in as_json.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "last week"], "'since' must be an ISO 8601 date-time"),
        (["--limit", "0"], "'limit' must be a whole number from 1 to 1000."),
        (["--domain", "not a domain"], "error:"),
    ],
)
def test_bad_options_are_one_clear_line(run, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    """A bad option exits with an error line, not a traceback."""
    result = run("audit", *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output

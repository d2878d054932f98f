"""The README names what a user meets: every command, every exit code, every HTTP status."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from mailctl import errors
from mailctl.cli.main import app

README = Path(__file__).resolve().parents[2] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(title)
    end = text.find("\n## ", start + len(title))
    return text[start : end if end != -1 else None]


def _error_classes() -> list[type[errors.MailctlError]]:
    found = [errors.MailctlError]
    for cls in found:
        found.extend(cls.__subclasses__())
    return [cls for cls in found if cls is not errors.MailctlError]


def _table_codes(section: str, header: str) -> set[int]:
    table = section[section.index(f"| {header} |") :].split("\n\n", 1)[0]
    return {int(code) for code in re.findall(r"^\| (\d+) \|", table, re.MULTILINE)}


def test_every_command_is_listed() -> None:
    """Each top-level command of `mailctl` appears in the README's command-line section."""
    section = _section("## The command line")
    # Lines like ``.venv/bin/mailctl reconcile | agent [--once]  # comment`` list commands.
    listed: set[str] = set()
    for line in section.splitlines():
        if line.startswith(".venv/bin/mailctl "):
            listed.update(re.findall(r"(?:mailctl|\|) ([a-z]+)", line.split("  #")[0]))
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert sorted(set(commands) - listed) == []


def test_every_exit_code_is_listed() -> None:
    """The exit-code table holds the code of every error kind the CLI reports."""
    listed = _table_codes(_section("## The command line"), "exit code")
    assert {cls.exit_code for cls in _error_classes()} <= listed


def test_every_http_status_is_listed() -> None:
    """The status table holds every status an error kind answers, 502 included."""
    listed = _table_codes(_section("## Using the API"), "status")
    assert {cls.status_code for cls in _error_classes()} <= listed
    assert {404, 405} <= listed  # unknown API method, wrong HTTP method

"""The README's curl examples, run as written with the real curl against a live server."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from tests.conftest import LiveServer

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_command(marker: str) -> str:
    """The README's shell command (continuation lines joined) whose text holds ``marker``."""
    lines = README.read_text().splitlines()
    for index, line in enumerate(lines):
        if not line.startswith("curl "):
            continue
        command = [line]
        while command[-1].endswith("\\"):
            index += 1
            command.append(lines[index])
        text = "\n".join(command)
        if marker in text:
            return text
    pytest.fail(f"the README has no curl command with {marker!r}")


def run_curl(
    command: str, server: LiveServer, token: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    if shutil.which("curl") is None:
        pytest.fail("curl is not installed; the README's examples use it")
    return subprocess.run(
        ["bash", "-c", command + " --silent --show-error"],
        env={"PATH": "/usr/bin:/bin", "API_URL": server.url, "TOKEN": token},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_catch_all_alias_example_creates_the_catch_all(
    api: httpx.Client, server: LiveServer, token: str, tmp_path: Path
) -> None:
    """The README's catch-all example sends "@domain" as text (curl -F would read a file)."""
    created = api.post(
        "/domains",
        data={
            "domain": "alsoanotherexample.com",
            "username": "username",
            "password": "PASSWORD-1",
        },
    )
    assert created.status_code == 200, created.text
    assert created.json()["domain"]["id"] == 1
    done = run_curl(readme_command("source=@"), server, token, tmp_path)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["result"] is True, body
    assert body["alias"]["source"] == "@alsoanotherexample.com"
    aliases = api.get("/aliases/1").json()["aliases"]
    assert [a["source"] for a in aliases] == ["@alsoanotherexample.com"]

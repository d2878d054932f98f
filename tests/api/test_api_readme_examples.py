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


# Once, on SQLite: what is checked is the example's fields and the answer's shape; the
# filters' SQL is tested on every backend in test_api_audit.py.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_audit_examples_read_a_domains_entries_page_by_page(
    api: httpx.Client, server: LiveServer, token: str, tmp_path: Path
) -> None:
    """The README's GET /audit examples, as written: a page of the domain's entries, then
    the next from ``after``."""
    fields = {"domain": "example.com", "username": "ann", "password": "PASSWORD-1"}
    created = api.post("/domains", data=fields)
    assert created.status_code == 200, created.text
    first = run_curl(readme_command('"since=2026-12-01T00:00:00Z"'), server, token, tmp_path)
    assert first.returncode == 0, first.stderr
    body = json.loads(first.stdout)
    assert body["result"] is True, body
    assert [e["action"] for e in body["entries"]] == ["create_user", "create_domain"]
    assert {e["domain"] for e in body["entries"]} == {"example.com"}
    assert body["next_after"] is None
    nxt = run_curl(readme_command('"after=12"'), server, token, tmp_path)
    assert nxt.returncode == 0, nxt.stderr
    older = json.loads(nxt.stdout)
    assert [e["id"] for e in older["entries"]] == [e["id"] for e in body["entries"]]  # all < 12
    assert older["next_after"] is None


# Once, on SQLite: the examples' fields and answers; the self-service SQL is tested on
# every backend in test_api_self.py.
@pytest.mark.parametrize("backend", ["sqlite"])
def test_self_service_examples_log_in_forward_and_reply(
    api: httpx.Client, server: LiveServer, token: str, tmp_path: Path
) -> None:
    """The README's self-service examples, as written: a mailbox logs in, forwards with a
    copy and turns an auto-reply on; an admin turns both off again."""
    fields = {"domain": "example.com", "username": "alice", "password": "PASSWORD"}
    assert api.post("/domains", data=fields).status_code == 200
    login = run_curl(
        readme_command('"email=alice@example.com" -F "password=PASSWORD"'), server, token, tmp_path
    )
    assert login.returncode == 0, login.stderr
    mailbox_token = json.loads(login.stdout)["token"]

    def as_owner(marker: str) -> dict[str, object]:
        command = readme_command(marker).replace("$MAILBOX_TOKEN", mailbox_token)
        done = run_curl(command, server, token, tmp_path)
        assert done.returncode == 0, done.stderr
        body: dict[str, object] = json.loads(done.stdout)
        assert body["result"] is True, body
        return body

    forwarding = as_owner("/self/forwarding")["forwarding"]
    assert forwarding == {"enabled": True, "destinations": ["bob@example.org"], "keep_copy": True}
    reply = as_owner("/self/autoreply")["autoreply"]
    assert reply == {
        "enabled": True,
        "subject": "Out of office",
        "body": "I am away until Monday.",
        "start": "2030-12-20",
        "end": "2031-01-03",
    }
    for marker in ('"id=1" -F "destinations="', '"enabled=false"'):
        done = run_curl(readme_command(marker), server, token, tmp_path)
        assert done.returncode == 0 and json.loads(done.stdout)["result"] is True, done.stdout
    mine = api.get("/user-forwarding", params={"email": "alice@example.com"}).json()
    assert mine["forwarding"]["enabled"] is False and mine["autoreply"]["enabled"] is False

"""``mailctl serve`` with several worker processes: one socket, one clean-up, one truth."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from tests.serverproc import ServeProcess, mailctl_env, serve

# Each test starts `mailctl serve` as a process, with its workers, at production costs.
pytestmark = pytest.mark.slow

ADMIN_PASSWORD = "a fine admin password"


def _workers(server: ServeProcess) -> list[int]:
    """The worker processes of the server: its children (forked, each serving the app)."""
    children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
    return [int(pid) for pid in children.read_text().split()]


def _wait_for_workers(server: ServeProcess, count: int) -> list[int]:
    deadline = time.monotonic() + 60
    while len(found := _workers(server)) < count and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def _statuses(server: ServeProcess, token: str, count: int) -> list[int]:
    """``count`` authenticated requests, each on a connection of its own (any worker)."""
    statuses = []
    for _ in range(count):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            statuses.append(client.get("/domains", headers={"Auth-token": token}).status_code)
    return statuses


def test_serve_runs_the_workers_asked_for_and_cleans_up_once(tmp_path: Path) -> None:
    """MAILCTL_WORKERS=2: two worker processes answer on the one port, and what a killed
    process left is settled once, by the parent, before they start."""
    data_dir = tmp_path / "data"
    ghost = data_dir / "mail" / "ghost.example" / "bob"
    for part in ("cur", "new", "tmp"):
        (ghost / part).mkdir(parents=True)
    with serve(tmp_path, ADMIN_PASSWORD, workers="2") as server:
        assert len(_wait_for_workers(server, 2)) == 2
        login = httpx.post(
            f"{server.url}/auth", data={"username": "admin", "password": ADMIN_PASSWORD}
        )
        assert login.status_code == 200, login.text
        assert set(_statuses(server, login.json()["token"], 20)) == {200}
    log = server.stderr.read_text()
    assert log.count(str(ghost)) == 1, log
    assert not ghost.exists()


def test_one_worker_serves_in_process(tmp_path: Path) -> None:
    """MAILCTL_WORKERS=1 serves from the process itself, with no worker processes."""
    with serve(tmp_path, ADMIN_PASSWORD, workers="1") as server:
        assert httpx.get(f"{server.url}/ping").text == "pong"
        assert _workers(server) == []


def test_a_token_revoked_on_the_host_is_refused_by_every_worker_at_once(tmp_path: Path) -> None:
    """A token every worker has just accepted is refused by the next request in each,
    once `mailctl admin revoke` (another process) has revoked it."""
    with serve(tmp_path, ADMIN_PASSWORD, workers="2", token_cache_seconds="60") as server:
        assert len(_wait_for_workers(server, 2)) == 2
        token = httpx.post(
            f"{server.url}/auth", data={"username": "admin", "password": ADMIN_PASSWORD}
        ).json()["token"]
        assert set(_statuses(server, token, 30)) == {200}
        revoke = subprocess.run(
            [sys.executable, "-m", "mailctl", "admin", "revoke", "admin", "--all"],
            env=mailctl_env(server.data_dir),
            capture_output=True,
            timeout=120,
        )
        assert revoke.returncode == 0, revoke.stderr.decode()
        assert set(_statuses(server, token, 30)) == {401}


def test_the_access_log_can_be_turned_off(tmp_path: Path) -> None:
    """One line per request by default (query values redacted); none with
    MAILCTL_ACCESS_LOG=false."""
    with serve(tmp_path, ADMIN_PASSWORD, log_name="logged") as server:
        assert httpx.get(f"{server.url}/ping?password=hunter2").text == "pong"
    logged = server.output().decode()
    assert '"GET /ping?password=[redacted] HTTP/1.1" 200' in logged
    assert "hunter2" not in logged
    with serve(
        tmp_path, ADMIN_PASSWORD, initialise=False, log_name="quiet", access_log="false"
    ) as server:
        assert httpx.get(f"{server.url}/ping").text == "pong"
    assert b"GET /ping" not in server.output()


def _gone(pid: int, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return True
        if state == "Z":  # ended, not yet reaped by its parent
            return True
        time.sleep(0.1)
    return False


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    """A worker killed from outside is started again; the server keeps answering."""
    with serve(tmp_path, ADMIN_PASSWORD, workers="2") as server:
        first = _wait_for_workers(server, 2)
        os.kill(first[0], signal.SIGKILL)
        assert _gone(first[0])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            now = _workers(server)
            if len(now) == 2 and first[0] not in now:
                break
            time.sleep(0.1)
        assert len(now) == 2 and first[0] not in now, now
        assert {httpx.get(f"{server.url}/ping").text for _ in range(10)} == {"pong"}
        assert "died" in server.stderr.read_text()


def test_workers_end_with_their_parent_even_when_it_is_killed(tmp_path: Path) -> None:
    """SIGKILL to the server (no clean-up possible) still ends every worker."""
    with serve(tmp_path, ADMIN_PASSWORD, workers="2") as server:
        workers = _wait_for_workers(server, 2)
        server.process.kill()
        server.process.wait(timeout=20)
        assert all(_gone(pid) for pid in workers)


def test_a_port_in_use_is_said_plainly(tmp_path: Path) -> None:
    """A second server on the same port exits 1 saying it cannot listen there."""
    with serve(tmp_path, ADMIN_PASSWORD, workers="2") as server:
        port = server.url.rsplit(":", 1)[1]
        second = subprocess.run(
            [sys.executable, "-m", "mailctl", "serve", "--port", port],
            env=mailctl_env(server.data_dir, workers="2"),
            capture_output=True,
            timeout=120,
        )
    assert second.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in second.stderr.decode()

"""A frozen database, or a lock held elsewhere, answers 503 in bounded time, then heals."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from tests.backends import selected_backends
from tests.conftest import ADMIN, ADMIN_PASSWORD
from tests.dbproxy import freezable_proxy
from tests.liveserver import live_api

# Small limits keep the tests quick; the bound asserted is generous for a busy machine.
CONNECT_TIMEOUT = 1.0
STATEMENT_TIMEOUT = 1.0
ANSWER_BOUND = 15.0
# Longer than any bounded answer: a client that waits this long met a hang.
HTTP_TIMEOUT = 25.0
HEAL_BOUND = 30.0

Figure = Callable[[str, object], None]
SERVER_BACKENDS = [name for name in selected_backends() if name != "sqlite"]


@contextmanager
def _served(url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    """The API on ``url`` with small database timeouts, and a client logged in as admin."""
    from mailctl.config import Settings
    from mailctl.services import auth
    from mailctl.services.context import Context

    settings = Settings(
        data_dir=tmp_path / "data",
        database_url=url,
        admin_username=ADMIN,
        database_connect_timeout=CONNECT_TIMEOUT,
        database_statement_timeout=STATEMENT_TIMEOUT,
    )
    ctx = Context.from_settings(settings)
    try:
        auth.initialize(ctx, ADMIN, ADMIN_PASSWORD)
        with live_api(ctx) as base, httpx.Client(base_url=base, timeout=HTTP_TIMEOUT) as client:
            login = client.post(
                "/auth", files={"username": (None, ADMIN), "password": (None, ADMIN_PASSWORD)}
            )
            assert login.status_code == 200, login.text
            client.headers["Auth-token"] = login.json()["token"]
            yield client
    finally:
        ctx.close()


def _heal_seconds(client: httpx.Client) -> float:
    """Seconds until ``GET /domains`` answers 200 again."""
    started = time.monotonic()
    while time.monotonic() - started < HEAL_BOUND:
        if client.get("/domains").status_code == 200:
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"the API did not heal within {HEAL_BOUND} s")


def _assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["result"] is False
    assert "database" in body["msg"]
    assert int(response.headers["Retry-After"]) > 0


@pytest.mark.security(
    finding=8,
    claim="A frozen database costs a request a few seconds and a 503 with Retry-After, "
    "not a hang, and the API heals by itself once the database is back.",
)
@pytest.mark.parametrize("backend", SERVER_BACKENDS)
def test_frozen_database_answers_503_then_heals(
    backend: str, database_url: str, tmp_path: Path, figure: Figure
) -> None:
    """Through a proxy that stops forwarding, a pooled connection gives up and heals."""
    parsed = make_url(database_url)
    assert parsed.host is not None and parsed.port is not None
    with freezable_proxy(parsed.host, parsed.port) as proxy:
        url = parsed.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        with _served(url, tmp_path) as client:
            assert client.get("/domains").status_code == 200  # the pool holds a connection
            proxy.pause()
            started = time.monotonic()
            try:
                response = client.get("/domains")
            finally:
                waited = time.monotonic() - started
                proxy.resume()
            _assert_unavailable(response)
            healed = _heal_seconds(client)
    figure(f"seconds until the answer ({backend})", round(waited, 2))
    figure(f"seconds to heal ({backend})", round(healed, 2))
    assert waited < ANSWER_BOUND


@contextmanager
def _lock_held(backend: str, url: str) -> Iterator[None]:
    """Another session holds a lock every write of a domain needs."""
    if backend == "sqlite":
        file = make_url(url).database
        assert file is not None
        holder = sqlite3.connect(file, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # the one write lock of the file
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if backend == "postgresql":
                conn.execute(text("LOCK TABLE virtual_domains IN ACCESS EXCLUSIVE MODE"))
                yield
                conn.rollback()
            else:
                conn.execute(text("LOCK TABLES virtual_domains WRITE"))
                try:
                    yield
                finally:
                    conn.execute(text("UNLOCK TABLES"))
    finally:
        engine.dispose()


@pytest.mark.security(
    finding=8,
    claim="A lock another session holds ends a request's wait at the statement timeout "
    "with a 503, and the same request works once the lock is gone.",
)
def test_lock_held_elsewhere_answers_503(
    backend: str, database_url: str, tmp_path: Path, figure: Figure
) -> None:
    """Creating a domain behind a held table or file lock fails in time, then works."""
    form = {"domain": (None, "locked.example")}
    with _served(database_url, tmp_path) as client:
        with _lock_held(backend, database_url):
            started = time.monotonic()
            response = client.post("/domains", files=form)
            waited = time.monotonic() - started
        _assert_unavailable(response)
        assert "did not answer in time" in response.json()["msg"]
        after = client.post("/domains", files=form)
        assert after.status_code == 200, after.text
        assert [d["name"] for d in client.get("/domains").json()["domains"]] == ["locked.example"]
    figure(f"seconds until the answer ({backend})", round(waited, 2))
    assert waited < ANSWER_BOUND

"""Shared fixtures: a fresh database per backend, a context, a live API server, a client."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.backends import drop_pg_template, fresh_database, selected_backends
from tests.liveserver import live_api
from tests.pgcluster import start_cluster

if TYPE_CHECKING:
    from mailctl.config import Settings
    from mailctl.services.context import Context

pytest_plugins = ["tests.securitylog"]

ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery"


@pytest.fixture(params=selected_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend this test runs on."""
    return str(request.param)


@pytest.fixture
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    with fresh_database(backend, tmp_path) as url:
        yield url


@pytest.fixture(scope="session", autouse=True)
def _no_reload_of_this_machines_daemons() -> Iterator[None]:
    """A test that turns reloads on never reloads the machine's own mail daemons.

    Tests that want a real reload name the command of the daemons they started.
    """
    patch = pytest.MonkeyPatch()
    for daemon in ("POSTFIX", "DOVECOT", "OPENDKIM"):
        patch.setenv(f"MAILCTL_RELOAD_{daemon}", "true")
    yield
    patch.undo()


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    drop_pg_template()


@pytest.fixture(scope="session")
def scram_postgres() -> Iterator[str]:
    """The superuser URL of a PostgreSQL cluster that checks passwords (scram-sha-256).

    Started on first use, for the whole session; stopped and removed at its end.
    """
    cluster = start_cluster()
    try:
        yield cluster.superuser_url
    finally:
        cluster.stop()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    from mailctl.config import Settings

    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_username=ADMIN,
    )


@pytest.fixture
def ctx(settings: Settings) -> Iterator[Context]:
    """An initialised context: schema, token secret and the admin ``admin``."""
    from mailctl.services import auth
    from mailctl.services.context import Context

    context = Context.from_settings(settings)
    auth.initialize(context, ADMIN, ADMIN_PASSWORD)
    yield context
    context.close()


@dataclass
class LiveServer:
    url: str
    ctx: Context


@pytest.fixture
def server(ctx: Context) -> Iterator[LiveServer]:
    """The real API under uvicorn on 127.0.0.1, in a thread of the test process."""
    with live_api(ctx) as url:
        yield LiveServer(url, ctx)


@pytest.fixture
def anon(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client without a token."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.fixture
def token(anon: httpx.Client) -> str:
    response = anon.post(
        "/auth", files={"username": (None, ADMIN), "password": (None, ADMIN_PASSWORD)}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["token"])


@pytest.fixture
def api(server: LiveServer, token: str) -> Iterator[httpx.Client]:
    """An HTTP client that sends the admin's token in the documented ``Auth-token`` header."""
    with httpx.Client(
        base_url=server.url, timeout=30, headers={"Auth-token": token, "Cache-Control": "no-cache"}
    ) as client:
        yield client

"""Shared fixtures: an empty migrated database per backend, a context, the API, a client.

Per-test set-up is kept cheap: each backend is migrated once per test process and emptied
before each test, passwords are hashed with small costs unless a test is marked
``production_hashing``, and the admin's token is minted by the service, not by a login.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from starlette.exceptions import StarletteDeprecationWarning

from tests.backends import SharedDatabases, drop_pg_template, fresh_database, selected_backends
from tests.liveserver import live_api
from tests.pgcluster import start_cluster

if TYPE_CHECKING:
    from mailctl.config import Settings
    from mailctl.services.context import Context

pytest_plugins = ["tests.securitylog"]

ADMIN = "admin"
ADMIN_PASSWORD = "correct horse battery"

# Costs small enough that a hash takes milliseconds at most; production's are in
# mailctl.domain.passwords, and tests marked ``production_hashing`` run with those.
CHEAP_HASHING: dict[str, int] = {
    "ARGON2_TIME_COST": 1,
    "ARGON2_MEMORY_KIB": 8,  # argon2's least: 8 KiB per lane
    "BCRYPT_COST": 4,  # bcrypt's least
    "SHA512_CRYPT_ROUNDS": 1000,  # crypt(3)'s least
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "production_hashing: hashes passwords with the production costs, not the cheap ones",
    )
    config.addinivalue_line(
        "markers",
        "own_database: gets a database created (and dropped) for it alone, not the shared "
        "one emptied before each test; for tests that change the schema or the database",
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a ``slow`` test run first, the others after, each in its own order.

    The parallel workers take whole files in this order (scripts/test asks xdist not to
    reorder them by size): the few long files start at once on both workers and the many
    quick ones fill the end, rather than one long file running alone at the finish.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashing() -> Iterator[dict[str, object]]:
    """Hash with the least costs the libraries accept; yield production's settings.

    The only place tests change hashing costs: the module's constants (which
    ``needs_rehash`` compares with) and the Argon2 hasher built from them.
    """
    from mailctl.domain import passwords

    production: dict[str, object] = {name: getattr(passwords, name) for name in CHEAP_HASHING}
    production["_hasher"] = passwords._hasher
    patch = pytest.MonkeyPatch()
    for name, value in CHEAP_HASHING.items():
        patch.setattr(passwords, name, value)
    patch.setattr(passwords, "_hasher", passwords.argon2_hasher())  # from the cheap ARGON2_*
    yield production
    patch.undo()


@pytest.fixture(autouse=True)
def _production_hashing_when_marked(
    request: pytest.FixtureRequest,
    _cheap_password_hashing: dict[str, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Give tests marked ``production_hashing`` the costs a real server hashes with."""
    if request.node.get_closest_marker("production_hashing") is None:
        return
    from mailctl.domain import passwords

    for name, value in _cheap_password_hashing.items():
        monkeypatch.setattr(passwords, name, value)


@pytest.fixture(params=selected_backends())
def backend(request: pytest.FixtureRequest) -> str:
    """The database backend this test runs on."""
    return str(request.param)


@pytest.fixture(scope="session")
def _shared_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedDatabases]:
    shared = SharedDatabases(tmp_path_factory.mktemp("databases"))
    yield shared
    shared.drop()


@pytest.fixture
def database_url(
    request: pytest.FixtureRequest,
    backend: str,
    tmp_path: Path,
    _shared_databases: SharedDatabases,
) -> Iterator[str]:
    """A migrated database without rows, ids starting at 1, for this test alone.

    Shared with the other tests of this process and emptied before each; a test marked
    ``own_database`` gets one created and dropped for it alone.
    """
    if request.node.get_closest_marker("own_database") is not None:
        with fresh_database(backend, tmp_path) as url:
            yield url
        return
    yield _shared_databases.clean(backend, tmp_path)


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
    with pytest.MonkeyPatch.context() as patch:
        # database_url is migrated already: Alembic's check would only cost time here.
        patch.setattr(context.database, "upgrade", lambda: None)
        auth.initialize(context, ADMIN, ADMIN_PASSWORD)
    yield context
    context.close()


class LiveServer:
    """The API of a test's context; served for real on first use of ``url``.

    ``url`` starts uvicorn on 127.0.0.1 in a thread of the test process (a real socket,
    for wire-format tests, subprocesses and streaming); a test that only reads ``ctx``
    starts nothing.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._url: str | None = None
        self._running = ExitStack()
        # Threads of one test may ask at once: they must get one server, not one each.
        self._starting = threading.Lock()

    @property
    def url(self) -> str:
        with self._starting:
            if self._url is None:
                self._url = self._running.enter_context(live_api(self.ctx))
            return self._url

    def stop(self) -> None:
        self._running.close()


@pytest.fixture
def server(ctx: Context) -> Iterator[LiveServer]:
    """The real API under uvicorn on 127.0.0.1 (started when ``server.url`` is first read)."""
    running = LiveServer(ctx)
    yield running
    running.stop()


@pytest.fixture
def live_server(server: LiveServer) -> LiveServer:
    """The real API under uvicorn on 127.0.0.1, already listening."""
    assert server.url
    return server


def _in_process(ctx: Context, headers: dict[str, str] | None = None) -> httpx.Client:
    """An HTTP client that calls the API of ``ctx`` in this process, through no socket.

    Like the clients of ``server.url``: from 127.0.0.1, no redirects followed, and a
    server error is a 500 answer rather than an exception. The app's lifespan (the clean-up
    of leftovers at start) is not run, as under ``live_api``.
    """
    from mailctl.api.app import create_app

    with warnings.catch_warnings():
        # Starlette asks for the httpx2 fork here; its client still runs on httpx, which
        # the tests use (and type their clients with) everywhere.
        warnings.simplefilter("ignore", StarletteDeprecationWarning)
        from starlette.testclient import TestClient

    return TestClient(
        create_app(ctx=ctx),
        base_url="http://127.0.0.1",
        raise_server_exceptions=False,
        client=("127.0.0.1", 50000),
        follow_redirects=False,
        headers=headers,
    )


@pytest.fixture
def anon(server: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client without a token, in process (``server.url`` serves on a socket)."""
    with _in_process(server.ctx) as client:
        yield client


@pytest.fixture
def token(ctx: Context) -> str:
    """The admin's token, minted by the service (logging in is tested in test_api_auth)."""
    from mailctl.services import auth

    with ctx.uow() as uow:
        admin = uow.admins.by_username(ADMIN)
        assert admin is not None
        identity = auth.AdminIdentity(admin.id, admin.username)
    return auth.issue_token(ctx, identity)


@pytest.fixture
def api(server: LiveServer, token: str) -> Iterator[httpx.Client]:
    """An HTTP client that sends the admin's token in the documented ``Auth-token`` header."""
    with _in_process(server.ctx, {"Auth-token": token, "Cache-Control": "no-cache"}) as client:
        yield client


@pytest.fixture
def live_api_client(live_server: LiveServer, token: str) -> Iterator[httpx.Client]:
    """Like ``api``, through the real server on its socket (for tests that race it)."""
    headers = {"Auth-token": token, "Cache-Control": "no-cache"}
    with httpx.Client(base_url=live_server.url, timeout=30, headers=headers) as client:
        yield client

"""schemathesis fuzzes every operation of the live server's /openapi.json with an admin token.

Each operation gets a fixed number of positive and of negative examples (hypothesis,
derandomized), so the request count is the same every run. Every answer must match the
document: a listed status, its content type and its schema, and never a 5xx. The operations
that reach outside (Let's Encrypt, live certificate checks) are pointed at a closed port of
127.0.0.1, and no name resolves but the loopback ones: nothing leaves this machine.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests
import schemathesis
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from tests.conftest import ADMIN, LiveServer
from tests.liveserver import free_port

from mailctl.errors import AuthError
from mailctl.services import auth

if TYPE_CHECKING:
    from mailctl.config import Settings

POSITIVE_EXAMPLES = 30
NEGATIVE_EXAMPLES = 22
MIN_REQUESTS = 2000
# Operations that may revoke the token they are sent with (see call() below).
REVOKING = {("POST", "/auth/logout"), ("DELETE", "/auth/tokens"), ("POST", "/auth/password")}
# 5xx are counted by the test itself: a 502 is the documented answer of a live certificate
# check whose host cannot be reached, and every host but the loopback is unreachable here.
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    """Outward operations fail fast, here: ACME on a closed local port, short TLS probes."""
    from mailctl.config import Settings

    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        admin_username=ADMIN,
        acme_directory_url=f"http://127.0.0.1:{free_port()}/directory",
        acme_timeout_seconds=5,
        tls_probe_timeout_seconds=2,
    )


def _loopback_only(real: Callable[..., Any]) -> Callable[..., Any]:
    """getaddrinfo that resolves loopback names and addresses only; anything else fails."""

    def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.lower() in ("localhost", "localhost."):
            return real("127.0.0.1", *args, **kwargs)
        try:
            if ipaddress.ip_address(name.strip("[]").split("%")[0]).is_loopback:
                return real(host, *args, **kwargs)
        except ValueError:
            pass
        raise socket.gaierror(socket.EAI_NONAME, "only loopback names resolve in this test")

    return resolve


@pytest.fixture
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only(socket.getaddrinfo))
    yield


@dataclass
class Tally:
    """What the run sent and saw."""

    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    remote_failures: int = 0
    transport_errors: list[str] = field(default_factory=list)

    def record(self, label: str, case: Any, response: Any, headers: dict[str, str]) -> None:
        self.sent[label] += 1
        self.statuses[response.status_code] += 1
        if response.status_code == 502 and case.operation.path == "/ssl/get-left-days":
            self.remote_failures += 1
        elif response.status_code >= 500:
            self.server_errors.append(f"{label} -> {response.status_code} {response.text[:200]}")
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (AssertionError, FailureGroup) as exc:
            self.violations.append(f"{label}: {str(exc)[:600]}")
        except Exception as exc:  # a check that could not run is a failure too, with its case
            self.violations.append(f"{label}: {type(exc).__name__}: {str(exc)[:600]}")


# The examples of each operation and mode, built once per test process: derandomized, they
# are the same for every backend, and building them costs more than sending them.
_EXAMPLES: dict[tuple[str, str], list[Any]] = {}


def examples(operation: Any, mode: Any, count: int) -> list[Any]:
    """``count`` examples of one operation in one generation mode (derandomized, cached)."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    key = (operation.label, mode.value)
    if key in _EXAMPLES:
        return _EXAMPLES[key]
    built: list[Any] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def build(case: Any) -> None:
        built.append(case)

    try:
        build()
    except Unsatisfiable:
        # No negative example exists for an operation without inputs (GET /ping).
        assert mode is schemathesis.GenerationMode.NEGATIVE, key
    _EXAMPLES[key] = built
    return built


def fuzz(
    operation: Any,
    mode: Any,
    count: int,
    call: Callable[[Any], Any],
    tally: Tally,
    headers: dict[str, str],
) -> None:
    """Send the examples of one operation in one generation mode, each answer checked."""
    label = f"{operation.label} ({mode.value})"
    for case in examples(operation, mode, count):
        try:
            response = call(case)
        except requests.RequestException as exc:
            tally.sent[label] += 1
            tally.transport_errors.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        tally.record(label, case, response, headers)


@pytest.mark.slow
@pytest.mark.security(
    finding=0,
    claim="Over 2,000 fuzzed requests to every operation of /openapi.json with an admin "
    "token get no 5xx and no answer the document does not describe.",
)
def test_schemathesis_finds_nothing(
    server: LiveServer, token: str, loopback_only: None, figure: Callable[[str, object], None]
) -> None:
    """Every operation, positive and negative examples; each answer conforms to the document."""
    schema = schemathesis.openapi.from_url(
        f"{server.url}/openapi.json", config=schemathesis.Config()
    )
    operations = [result.ok() for result in schema.get_all_operations()]
    headers = {"Auth-token": token}
    session = requests.Session()
    tally = Tally()
    started = time.monotonic()
    admin = auth.authenticate(server.ctx, token)

    def call(case: Any) -> Any:
        if (case.method.upper(), case.operation.path) not in REVOKING:
            return case.call(base_url=server.url, session=session, headers=headers)
        # Logout, revocation and a password change may end the token they are sent with
        # (or all of the admin's): each gets a token of its own, and the run's token is
        # renewed when one of them revoked it too.
        own = {"Auth-token": auth.issue_token(server.ctx, admin)}
        response = case.call(base_url=server.url, session=session, headers=own)
        try:
            auth.authenticate(server.ctx, headers["Auth-token"])
        except AuthError:
            headers["Auth-token"] = auth.issue_token(server.ctx, admin)
        return response

    for operation in operations:
        fuzz(
            operation, schemathesis.GenerationMode.POSITIVE, POSITIVE_EXAMPLES, call, tally, headers
        )
        fuzz(
            operation, schemathesis.GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, call, tally, headers
        )

    total = sum(tally.sent.values())
    covered = {label.rsplit(" (", 1)[0] for label in tally.sent}
    figure("requests sent", total)
    figure("operations covered", f"{len(covered)} of {len(operations)}")
    figure("5xx seen", len(tally.server_errors))
    figure("schema violations", len(tally.violations))
    figure("502 of unreachable live checks", tally.remote_failures)
    figure("seconds", round(time.monotonic() - started, 1))
    figure("statuses", dict(sorted(tally.statuses.items())))
    figure("requests without an answer", len(tally.transport_errors))
    assert not tally.transport_errors, "\n".join(tally.transport_errors[:20])
    assert not tally.server_errors, "\n".join(tally.server_errors[:20])
    assert not tally.violations, "\n\n".join(tally.violations[:10])
    assert covered == {o.label for o in operations}
    assert total >= MIN_REQUESTS

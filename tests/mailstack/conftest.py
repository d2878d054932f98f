"""Fixtures for the mail-stack tests: one running stack per module and database backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.backends import ALL_BACKENDS, selected_backends
from tests.mailstack.stack import MailStack, pg_server_for, running_stack


@pytest.fixture(scope="module", params=selected_backends())
def mailstack(request: pytest.FixtureRequest) -> Iterator[MailStack]:
    """A running mail stack on one database backend, shared by a module's tests.

    Starting and stopping the three daemons takes seconds, so tests share a stack and
    keep out of each other's way with a domain of their own (``MailStack.new_domain``).
    """
    backend = str(request.param)
    # The daemons log in with passwords: on PostgreSQL, to a cluster that checks them.
    with running_stack(backend, pg_server=pg_server_for(request, backend)) as stack:
        yield stack


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Attach the daemons' log tails to the report of a failed test that used a stack."""
    report = yield
    stack = getattr(item, "funcargs", {}).get("mailstack")
    if report.failed and isinstance(stack, MailStack):
        report.sections.append(("mail stack logs", stack.logs()))
    return report


HERE = Path(__file__).resolve().parent
STACKS = {"mailstack", "deployment", "host"}  # the module-scoped fixtures that start daemons


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under ``pytest -n N --dist loadgroup``, keep a module's tests of one backend together.

    A stack is module-scoped per backend and takes seconds to start: spread over workers,
    each worker would start its own copy. Grouped by module and backend, each stack starts
    once, on one worker, and the other backends' stacks of the module may run elsewhere.
    """
    for item in items:
        if HERE not in item.path.parents or not STACKS & set(getattr(item, "fixturenames", ())):
            continue
        params = getattr(item, "callspec", None)
        values = params.params.values() if params is not None else ()
        backends = sorted({v for v in values if isinstance(v, str) and v in ALL_BACKENDS})
        group = "-".join([item.path.stem, *backends])
        item.add_marker(pytest.mark.xdist_group(group))

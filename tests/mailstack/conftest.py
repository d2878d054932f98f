"""Fixtures for the mail-stack tests: one running stack per module and database backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.backends import selected_backends
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

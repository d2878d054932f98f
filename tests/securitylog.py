"""Evidence for docs/security.md, gathered while the suite runs.

A test that proves a security claim carries ``@pytest.mark.security(finding, claim)`` and may
record figures with the ``figure`` fixture (``figure("requests sent", 2140)``). After each
such test, one JSON line (its id, outcome, finding, claim and figures) is appended to
``.test-results/security-<pid>.jsonl``; ``scripts/security-report`` turns those lines into
the table of docs/security.md. The hook runs in the process that runs the test, so under
pytest-xdist each worker writes a file of its own and the report reads them all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

RESULTS = Path(
    os.environ.get("MAILCTL_TEST_RESULTS", Path(__file__).parent.parent / ".test-results")
)
_FIGURES = pytest.StashKey[dict[str, Any]]()

Figure = Callable[[str, object], None]
"""The type of the ``figure`` fixture, for annotations."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "security(finding, claim): evidence for a claim of docs/security.md; "
        "finding is the number of the hardening finding it proves (0 for none)",
    )


@pytest.fixture
def figure(request: pytest.FixtureRequest) -> Figure:
    """Record a measured figure of this test (name, value) for docs/security.md."""
    figures = request.node.stash.setdefault(_FIGURES, {})

    def record(name: str, value: object) -> None:
        figures[name] = value

    return record


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    marker = item.get_closest_marker("security")
    if marker is None:
        return
    if report.when == "setup" and report.passed:
        return
    if report.when == "teardown" and report.passed:
        return
    kwargs = dict(marker.kwargs)
    finding = kwargs.get("finding", marker.args[0] if marker.args else 0)
    claim = kwargs.get("claim", marker.args[1] if len(marker.args) > 1 else item.name)
    line = {
        "test": item.nodeid,
        "when": report.when,
        "outcome": report.outcome,
        "finding": int(finding),
        "claim": str(claim),
        "figures": {k: v for k, v in item.stash.get(_FIGURES, {}).items()},
        "seconds": round(report.duration, 2),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"security-{os.getpid()}.jsonl", "a", encoding="utf-8") as out:
        out.write(json.dumps(line, default=str) + "\n")

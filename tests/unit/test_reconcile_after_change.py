"""The reconcile after a change: the same for every caller, and bounded in time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from mailctl.config import Settings
from mailctl.host.fs import ensure_dir, locked
from mailctl.services import dkim, domains
from mailctl.services.context import Actor, Context
from mailctl.services.reconcile import LOCK_NAME

ACTOR = Actor("tester", "192.0.2.7")
WAIT = 0.5


@pytest.fixture
def quick(settings: Settings) -> Iterator[Context]:
    """A context whose reconcile waits at most WAIT seconds for another one."""
    context = Context.from_settings(
        settings.model_copy(update={"reconcile_lock_wait_seconds": WAIT})
    )
    yield context
    context.close()


def test_a_change_while_another_reconcile_runs_returns_within_the_bound(quick: Context) -> None:
    """A busy host does not hold the caller for long: the change stands, the outcome says why
    the files lag, and the next change renders them."""
    opendkim = quick.settings.opendkim_path
    ensure_dir(opendkim, 0o755)
    with locked(opendkim / LOCK_NAME):
        started = time.monotonic()
        domains.create_domain(quick, ACTOR, "example.com")
        result = dkim.add_key(quick, ACTOR, "example.com", "s1", "ed25519")
        took = time.monotonic() - started
    assert took < 2 * WAIT + 5  # two bounded waits, plus a key and two commits
    assert result.reload.error == "Another reconcile is running on this host; try again later."
    assert quick.last_reconcile == result.reload
    assert not (opendkim / "KeyTable").exists()
    assert domains.get_domain(quick, "example.com").name == "example.com"

    again = quick.changed("dkim")
    assert again.ok
    assert "example.com:s1:" in (opendkim / "KeyTable").read_text()

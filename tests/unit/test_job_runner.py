"""The job runner belongs to the Context and stops with it (and with the app)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from mailctl.api.app import create_app
from mailctl.config import Settings
from mailctl.errors import ThrottledError
from mailctl.services import auth, jobs
from mailctl.services.context import Context
from mailctl.services.job_runner import JobRunner

# The runner is process wiring; one backend shows it.
pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.fixture
def own(settings: Settings) -> Iterator[Context]:
    """A context with a one-thread runner, initialised; closed by the test itself."""
    context = Context.from_settings(settings)
    context.job_runner = JobRunner(workers=1, queued=4)
    auth.initialize(context, "admin", "correct horse battery")
    yield context
    context.database.dispose()


def test_closing_the_runner_cancels_waiting_jobs_and_waits_for_running_ones(
    own: Context,
) -> None:
    """A job not yet started ends 'failed' as cancelled; the running one is let finish."""
    gate = threading.Event()
    started = threading.Event()

    def slow(progress: jobs.Progress) -> str:
        started.set()
        assert gate.wait(10)
        return "slow done"

    first = jobs.start(own, "test", "a.example", "test:a", 600, slow)
    assert started.wait(10)
    second = jobs.start(own, "test", "b.example", "test:b", 600, lambda _p: "never")
    closer = threading.Thread(target=own.job_runner.close, args=(10,))
    closer.start()
    gate.set()
    closer.join(15)
    assert not closer.is_alive()

    done = jobs.get_job(own, first)
    assert (done.state, done.message) == ("succeeded", "slow done")
    cancelled = jobs.get_job(own, second)
    assert (cancelled.state, cancelled.message) == (
        "failed",
        "Cancelled: the server stopped before it ran.",
    )
    with own.uow() as uow:
        assert uow.jobs.running_for("test:b") is None  # its lock is free again
    with pytest.raises(ThrottledError, match="The server is stopping"):
        jobs.start(own, "test", "c.example", "test:c", 600, lambda _p: "too late")


def test_the_app_stops_its_job_runner_when_it_shuts_down(own: Context) -> None:
    """After the API's lifespan ends, its context takes no more jobs."""
    app = create_app(ctx=own)
    gate = threading.Event()

    def work(_progress: jobs.Progress) -> str:
        assert gate.wait(10)
        return "done"

    async def serve_then_stop() -> str:
        async with app.router.lifespan_context(app):
            job_id = jobs.start(own, "test", "a.example", "test:a", 600, work)
            gate.set()
        return job_id

    job = asyncio.run(serve_then_stop())
    assert jobs.get_job(own, job).state == "succeeded"  # the shutdown waited for it
    with pytest.raises(ThrottledError, match="The server is stopping"):
        own.job_runner.reserve()

"""``mailctl reconcile`` and ``mailctl agent``: bring this host's files in line with the DB."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import typer

from mailctl.cli.common import console, context, err_console, reports_errors
from mailctl.errors import HostStateError, UpstreamError
from mailctl.services import agent, leftovers
from mailctl.services.agent import AgentRun
from mailctl.services.reconcile import ReconcileOutcome, reconcile_safely


def print_outcome(outcome: ReconcileOutcome) -> None:
    """Say what a reconcile run changed, and what failed."""
    report = outcome.report
    if outcome.error is not None:
        err_console.print(f"[bold red]reconcile failed:[/] {outcome.error}", highlight=False)
        return
    if not report.changed:
        console.print("This host's files are up to date.", highlight=False)
    for path in report.written:
        console.print(f"wrote   {path}", highlight=False, soft_wrap=True)
    for path in report.deleted:
        console.print(f"deleted {path}", highlight=False, soft_wrap=True)
    for daemon in report.reloaded:
        console.print(f"reloaded {daemon}", highlight=False)
    for daemon in report.not_running:
        console.print(
            f"{daemon} is not running, so it was not reloaded; it reads the new files when "
            "it starts.",
            highlight=False,
            soft_wrap=True,
        )
    for problem in report.failures:
        err_console.print(
            f"[bold red]reload of {problem.daemon} failed[/] ({problem.status}): "
            f"{problem.detail.strip()}; its previous files were kept.",
            highlight=False,
            soft_wrap=True,
        )


@reports_errors
def reconcile_command() -> None:
    """Render this host's OpenDKIM and TLS files from the database, once."""
    with context() as ctx:
        outcome = reconcile_safely(ctx)
    print_outcome(outcome)
    if not outcome.ok:
        raise typer.Exit(HostStateError.exit_code)


@contextmanager
def _stopped_by_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM or SIGINT for the block, then restore the previous handlers."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger("mailctl.agent").info(
            "%s received; stopping after this pass", signal.Signals(signum).name
        )
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _print_run(run: AgentRun) -> None:
    for name in run.renewed:
        console.print(f"renewed certificate {name}", highlight=False)
    if run.renew_error is not None:
        err_console.print(f"[bold red]renewal failed:[/] {run.renew_error}", highlight=False)
    if run.reconcile.report.changed or not run.reconcile.ok:
        print_outcome(run.reconcile)


@reports_errors
def agent_command(
    interval: float | None = typer.Option(
        None, min=0.1, help="Seconds between passes (default: agent_interval_seconds)."
    ),
    once: bool = typer.Option(False, "--once", help="Run one pass and exit."),
) -> None:
    """Renew due certificates and reconcile this host, every interval until stopped."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with context() as ctx:
        leftovers.clean_up_safely(ctx)
        if once:
            run = agent.run_once(ctx)
            _print_run(run)
            if not run.reconcile.ok:
                raise typer.Exit(HostStateError.exit_code)
            if run.renew_error is not None:
                raise typer.Exit(UpstreamError.exit_code)
            if not run.reconcile.report.changed:
                console.print("This host's files are up to date.", highlight=False)
            return
        every = interval if interval is not None else ctx.settings.agent_interval_seconds
        stop = threading.Event()
        console.print(f"Agent running, a pass every {every:g} s.", highlight=False)
        with _stopped_by_signals(stop):
            passes = agent.run_forever(ctx, every, stop, on_run=_print_run)
    console.print(f"Agent stopped after {passes} passes.", highlight=False)

"""The agent: renew due certificates, then keep this host's files in line, in a loop.

After a change, ``Context.changed`` reconciles (services/reconcile.py); the agent is the
loop that converges a host whose files lag (a failed reload, a change made on another
node of a fleet sharing the database).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from mailctl.errors import MailctlError
from mailctl.services.acme_orders import Renewals, renew_due
from mailctl.services.context import Context
from mailctl.services.reconcile import ReconcileOutcome, reconcile_safely

log = logging.getLogger("mailctl.agent")

Renewer = Callable[[Context], Renewals]


@dataclass(frozen=True)
class AgentRun:
    """One pass of the agent: certificates renewed, then this host reconciled."""

    renewed: list[str]
    renew_error: str | None
    reconcile: ReconcileOutcome

    @property
    def ok(self) -> bool:
        """True when renewal and reconcile both went through."""
        return self.renew_error is None and self.reconcile.ok


def run_once(ctx: Context, renew: Renewer | None = None) -> AgentRun:
    """Renew certificates that are due, then reconcile; never raises for a mailctl error.

    Renewal comes first so a renewed certificate reaches the disk in the same pass.
    ``renew`` defaults to the certificate service's ``renew_due``.
    """
    renewer = renew if renew is not None else renew_due
    renewed: list[str] = []
    renew_error = None
    try:
        renewals = renewer(ctx)
    except MailctlError as exc:
        renew_error = exc.message
        log.error("certificate renewal failed: %s", exc.message)
    except Exception as exc:
        # A renewal bug must not keep this host from converging: reconcile still runs.
        renew_error = f"unexpected error: {exc}"
        log.exception("certificate renewal failed")
    else:
        renewed = list(renewals.renewed)
        if renewals.failed:
            renew_error = "; ".join(
                f"{name}: {message}" for name, message in renewals.failed.items()
            )
    if renewed:
        log.info("renewed certificates: %s", ", ".join(renewed))
    return AgentRun(renewed, renew_error, reconcile_safely(ctx))


def run_forever(
    ctx: Context,
    interval: float,
    stop: threading.Event,
    on_run: Callable[[AgentRun], None] | None = None,
    renew: Renewer | None = None,
) -> int:
    """Run a pass every ``interval`` seconds until ``stop`` is set; return the number of passes.

    The wait is measured from the start of a pass, so a slow pass does not push every later
    one back; a pass that overruns the interval is followed by the next one at once.
    """
    passes = 0
    while not stop.is_set():
        started = time.monotonic()
        try:
            result = run_once(ctx, renew)
        except Exception:
            # An agent that dies on one unexpected error stops converging the host for good;
            # log it with its traceback and try again next interval.
            log.exception("agent pass failed")
        else:
            if on_run is not None:
                on_run(result)
        passes += 1
        stop.wait(max(0.0, interval - (time.monotonic() - started)))
    return passes

"""Keeping this host's files in line with the database: after each change, and in a loop."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailctl.errors import MailctlError, reported
from mailctl.services.context import Context
from mailctl.services.reconcile import ReconcileReport, reconcile

log = logging.getLogger("mailctl.agent")

# Changes that only touch tables Postfix and Dovecot read directly; no rendered file
# depends on them, so they need no reconcile. Any other kind of change is reconciled.
NO_FILES_CHANGE = frozenset({"users", "aliases", "admins"})


@dataclass(frozen=True)
class Renewals:
    """One renewal pass: the certificates renewed, and why each failed one failed."""

    renewed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


Renewer = Callable[[Context], Renewals]


@dataclass(frozen=True)
class ReconcileOutcome:
    """One reconcile run as a caller reports it: what changed, or why it could not run."""

    report: ReconcileReport = field(default_factory=ReconcileReport)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the run completed and every needed reload succeeded."""
        return self.error is None and self.report.ok


def reconcile_safely(ctx: Context) -> ReconcileOutcome:
    """Run reconcile; its errors come back in the outcome (and the log) instead of raising.

    Callers run this after a change is committed: the change stands whatever happens to
    the files, and the next run (the agent, or the next change) tries again.
    """
    try:
        report = reconcile(ctx)
    except (MailctlError, OSError) as exc:
        shown = reported(exc)  # a full disk says so, whichever write met it
        if shown is None:
            log.exception("reconcile failed unexpectedly")
            return ReconcileOutcome(error="Reconcile failed unexpectedly; the log has the details.")
        log.error("reconcile failed: %s", shown.message)
        return ReconcileOutcome(error=shown.message)
    except Exception:
        # The change is committed whatever went wrong here; reporting it as failed would
        # make a caller retry something that already happened.
        log.exception("reconcile failed unexpectedly")
        return ReconcileOutcome(error="Reconcile failed unexpectedly; the log has the details.")
    if report.changed:
        log.info(
            "reconcile wrote %d, deleted %d, reloaded %s",
            len(report.written),
            len(report.deleted),
            ", ".join(report.reloaded) or "nothing",
        )
    return ReconcileOutcome(report=report)


class ReconcileOnChange:
    """A change listener that reconciles after committed changes that affect rendered files.

    ``last`` keeps the outcome of its latest run, so a caller can report a failure.
    """

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.last: ReconcileOutcome | None = None

    def __call__(self, what: str) -> None:
        if what in NO_FILES_CHANGE:
            return
        self.last = reconcile_safely(self.ctx)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ReconcileOnChange) and other.ctx is self.ctx

    def __hash__(self) -> int:
        return id(self.ctx)


def reconcile_on_change(ctx: Context) -> ReconcileOnChange:
    """Make every committed change on ``ctx`` reconcile this host; registering twice is a no-op.

    The API and every CLI command call this on their context: one path from a change to
    the files, whoever made the change. Returns the listener registered on ``ctx``.
    """
    listener = ReconcileOnChange(ctx)
    for registered in ctx.change_listeners:
        if registered == listener:
            assert isinstance(registered, ReconcileOnChange)
            return registered
    ctx.change_listeners.append(listener)
    return listener


def find_renewer() -> Renewer | None:
    """The certificate renewal service, ``certificates.renew_due``, if this build has it."""
    try:
        module = importlib.import_module("mailctl.services.certificates")
    except ModuleNotFoundError as exc:
        if exc.name != "mailctl.services.certificates":
            raise
        return None
    renew: Renewer | None = getattr(module, "renew_due", None)
    return renew


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
    ``renew`` defaults to the certificate service's ``renew_due`` when it exists.
    """
    renewer = renew if renew is not None else find_renewer()
    renewed: list[str] = []
    renew_error = None
    if renewer is not None:
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

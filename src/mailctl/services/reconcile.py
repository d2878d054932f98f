"""Reconcile: bring this host's daemon files in line with the database, and nothing else.

gather (database rows, files on disk) → decide (a pure plan) → apply (atomic writes,
deletes, reloads of only the daemons whose files changed). Running it twice in a row
changes nothing the second time.

Every committed change reaches the host through ``Context.changed``, which calls
``reconcile_safely`` here; so the API, the CLI, the agent, imports and restores render
the same files for the same change. How long that may take is bounded (see
``reconcile``): the wait for another run's lock by ``reconcile_lock_wait_seconds``, each
daemon reload by ``reload_timeout_seconds``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mailctl.config import Settings
from mailctl.errors import MailctlError, reported
from mailctl.host import daemons as host_daemons
from mailctl.host import state as host_state
from mailctl.host.fs import ensure_dir, locked
from mailctl.host.plan import plan, read_actual
from mailctl.host.render import (
    DesiredFile,
    DkimKeyState,
    TlsState,
    key_dir,
    render_opendkim,
    render_tls,
)
from mailctl.host.sieve import render_sieve
from mailctl.services.stack_record import reload_commands
from mailctl.storage.uow import UnitOfWork

log = logging.getLogger("mailctl.reconcile")

LOCK_NAME = ".reconcile.lock"

# Changes that only touch tables Postfix and Dovecot read directly; no rendered file
# depends on them, so they need no reconcile. Any other kind of change is reconciled.
NO_FILES_CHANGE = frozenset({"users", "aliases", "admins"})


class Wiring(Protocol):
    """What reconcile needs of a process's wiring (``Context`` has it): settings, a database."""

    settings: Settings

    def uow(self) -> UnitOfWork: ...


@dataclass(frozen=True)
class ReloadProblem:
    """A daemon that refused its reload; its previous files were put back."""

    daemon: str
    status: str
    detail: str


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconcile run changed on this host."""

    written: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    reloaded: list[str] = field(default_factory=list)
    failures: list[ReloadProblem] = field(default_factory=list)
    # Daemons with changed files that were not reloaded because they do not run.
    not_running: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.written or self.deleted)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass(frozen=True)
class _Rows:
    """The database rows the daemon files are rendered from."""

    keys: list[tuple[str, str, str]]
    certs: Sequence[tuple[str, str, str]]
    # The mailboxes' forwarding and auto-reply settings (storage.mailbox_rows.SieveRow).
    sieve: Sequence[tuple[str, ...]] = ()


def _read_rows(ctx: Wiring) -> _Rows:
    with ctx.uow() as uow:
        return _Rows(
            uow.dkim_keys.signing_rows(),
            uow.certificates.pem_rows(),
            uow.mailbox_settings.sieve_rows(),
        )


def _owners(settings: Settings) -> tuple[int | None, int | None, int, int]:
    # DKIM files belong to OpenDKIM's user (MAILCTL_FILE_UID/GID); TLS files to whoever
    # runs reconcile, root on a mail host, so that a key left behind by another owner
    # is taken back even when its bytes are right.
    return settings.file_uid, settings.file_gid, os.geteuid(), os.getegid()


def _render(settings: Settings, rows: _Rows) -> list[DesiredFile]:
    dkim_uid, dkim_gid, tls_uid, tls_gid = _owners(settings)
    keys = [DkimKeyState(domain, selector, pem) for domain, selector, pem in rows.keys]
    certs = [TlsState(name, c.encode("ascii"), k.encode("ascii")) for name, c, k in rows.certs]
    return [
        *render_opendkim(keys, settings.opendkim_path, uid=dkim_uid, gid=dkim_gid),
        *render_tls(certs, settings.tls_path, uid=tls_uid, gid=tls_gid),
        *_render_sieve(settings, rows),
    ]


def _render_sieve(settings: Settings, rows: _Rows) -> list[DesiredFile]:
    # Read at delivery by the vmail account, through its group.
    return render_sieve(rows.sieve, settings.sieve_path, gid=settings.mail_gid)


def _inputs(settings: Settings, rows: _Rows) -> str:
    """A digest of all that the rendered files depend on: settings and rows."""
    where = (str(settings.opendkim_path), str(settings.tls_path), *map(str, _owners(settings)))
    sieve = (str(settings.sieve_path), str(settings.mail_gid))
    return host_state.inputs_digest(
        [where, ("keys",), *rows.keys, ("certificates",), *rows.certs, sieve, *rows.sieve]
    )


def desired_files(ctx: Wiring) -> list[DesiredFile]:
    """Everything the daemons should find on disk, computed from the database."""
    return _render(ctx.settings, _read_rows(ctx))


def reconcile(ctx: Wiring) -> ReconcileReport:
    """Render, compare, write what differs, reload whom it concerns; one run at a time.

    Bounded: a run waits at most ``reconcile_lock_wait_seconds`` for another run on this
    host (then ConflictError), and each reload at most ``reload_timeout_seconds``; with the
    three daemons that is the longest a caller (an API request included) can be held.

    A run that finds the same rows as the last complete run, and every file and folder
    that run left with the same lstat (see ``host.state``), has nothing to do and stops
    there; any other run compares every file, reading those it cannot vouch for.
    """
    settings = ctx.settings
    managed = {
        key_dir(settings.opendkim_path): frozenset({"opendkim"}),
        settings.tls_path: frozenset({"postfix", "dovecot"}),
        # Scripts of mailboxes whose settings are gone are deleted; nothing to reload.
        settings.sieve_path: frozenset(),
    }
    ensure_dir(settings.opendkim_path, 0o755)
    ensure_dir(settings.tls_path, 0o755)
    ensure_dir(settings.sieve_path, 0o755)
    # In the data folder, which is this host's own: not beside the files a daemon reads.
    state_path = settings.data_dir / host_state.STATE_NAME
    with locked(settings.opendkim_path / LOCK_NAME, settings.reconcile_lock_wait_seconds):
        rows = _read_rows(ctx)
        inputs = _inputs(settings, rows)
        known = host_state.load(state_path)
        if known is not None and known.inputs == inputs and known.unchanged_on_disk(racy=False):
            return ReconcileReport()
        desired = _render(settings, rows)
        since = _filesystem_now(settings.data_dir)
        seen = host_state.Seen()
        actual = read_actual(desired, [d for d in managed if d.exists()], known, seen)
        decided = plan(desired, actual, managed)
        if decided.empty:
            _remember(state_path, inputs, desired, seen, managed, since)
            return ReconcileReport()
        # Until this run completes, the record no longer describes the disk.
        host_state.forget(state_path)
        commands = reload_commands(settings)
        result = host_daemons.apply(decided, actual, commands, settings.reload_timeout_seconds)
        if result.ok:
            seen.forget_around((*result.written, *result.deleted, *result.restored))
            _remember(state_path, inputs, desired, seen, managed, since)
    report = ReconcileReport(
        written=[str(p) for p in result.written],
        deleted=[str(p) for p in result.deleted],
        # A daemon without a reload command (the embedded default) was not reloaded at all.
        reloaded=[daemon for daemon in result.reloaded if commands.get(daemon)],
        failures=[ReloadProblem(f.daemon, str(f.status), f.stderr_tail) for f in result.failures],
        not_running=list(result.not_running),
    )
    for daemon in report.not_running:
        log.warning("%s is not running: its new files are in place for when it starts", daemon)
    for problem in report.failures:
        log.error(
            "reload of %s failed (%s): %s; its previous files were kept",
            problem.daemon,
            problem.status,
            problem.detail,
        )
    return report


def _filesystem_now(data_dir: Path) -> int | None:
    """The time a record is made from (see host.state), or None: no record this time."""
    if not data_dir.is_dir():
        return None  # nothing is recorded without a data folder (`mailctl init` makes it)
    try:
        return host_state.filesystem_now(data_dir)
    except OSError as exc:
        log.warning("cannot record the reconciled state (%s); the next run compares all", exc)
        return None


def _remember(
    state_path: Path,
    inputs: str,
    desired: list[DesiredFile],
    seen: host_state.Seen,
    managed: Iterable[Path],
    since: int | None,
) -> None:
    """Record what this run left on disk; a failure only costs the next run its shortcut.

    The folders watched are those under the managed ones, where a file nobody renders
    would be deleted; the others (the record's own folder) are not listed at all.
    ``seen`` holds what the comparison found that this run did not change since.
    """
    if since is None:
        return
    roots = tuple(os.fspath(folder) for folder in managed)
    folders = set(seen.folders).union(roots)
    for file in desired:
        parent = os.fspath(file.path).rpartition("/")[0]  # as dirname, for clean paths
        if parent.startswith(roots):
            folders.add(parent)
    try:
        contents = {os.fspath(f.path): f.content for f in desired}
        host_state.record(state_path, inputs, contents, sorted(folders), since, seen=seen)
    except (MailctlError, OSError) as exc:
        host_state.forget(state_path)
        log.warning("cannot record the reconciled state (%s); the next run compares all", exc)


@dataclass(frozen=True)
class ReconcileOutcome:
    """One reconcile run as a caller reports it: what changed, or why it could not run."""

    report: ReconcileReport = field(default_factory=ReconcileReport)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when the run completed and every needed reload succeeded."""
        return self.error is None and self.report.ok


def reconcile_safely(ctx: Wiring) -> ReconcileOutcome:
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


def after_change(ctx: Wiring, what: str) -> ReconcileOutcome:
    """Reconcile after a committed change of ``what``, unless no rendered file depends on it.

    A change of only mailboxes, aliases or admins (``NO_FILES_CHANGE``) renders nothing
    and returns an empty outcome at once.
    """
    if what in NO_FILES_CHANGE:
        return ReconcileOutcome()
    return reconcile_safely(ctx)
